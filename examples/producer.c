/*
 * A producer for a decoupled worker: submits to a region served by
 * `pollux worker --lib libpx_example_tasks.so` and prints the results.
 *
 *     pollux region create /demo
 *     pollux worker --region /demo --lib ./libpx_example_tasks.so &
 *     ./px_example_producer /demo
 */
#include <pollux.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The producer declares the definitions it submits (without bodies): the
 * names and modes must match the worker's library. */
static const px_task_def defs[] = {
    {.name = "upper", .mode = PX_THREAD},
    {.name = "sum", .mode = PX_PROCESS},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s REGION\n", argv[0]);
        return 2;
    }
    px_region *r;
    int rc = px_region_open(argv[1], &(px_region_opts){.flags = PX_REGION_ATTACH}, &r);
    if (rc) {
        fprintf(stderr, "%s: %s\n", argv[1], px_strerror(rc));
        return 1;
    }
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        px_task_register(r, &defs[i]);

    px_id up, sum;
    const char *text = "hello from a producer";
    int64_t nums[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int failures = 0;
    if ((rc = px_submit(r, "upper", text, strlen(text), NULL, &up)) != 0 ||
        (rc = px_submit(r, "sum", nums, sizeof nums, NULL, &sum)) != 0) {
        fprintf(stderr, "submit: %s\n", px_strerror(rc));
        return 1;
    }
    char out[256];
    size_t n;
    rc = px_join(r, up, 10.0, out, sizeof out, &n);
    if (rc == 0)
        printf("upper: %.*s\n", (int)n, out);
    else
        printf("upper: %s\n", px_strerror(rc)), failures++;
    int64_t total = 0;
    rc = px_join(r, sum, 10.0, &total, sizeof total, &n);
    if (rc == 0)
        printf("sum: %lld\n", (long long)total);
    else
        printf("sum: %s\n", px_strerror(rc)), failures++;
    px_forget(r, up);
    px_forget(r, sum);
    px_region_close(r);
    return failures ? 1 : 0;
}
