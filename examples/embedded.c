/*
 * A single-file program: define tasks, start embedded workers, submit, join.
 *
 *     ./px_example_embedded
 */
#include <pollux.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PX_TASK(reverse, PX_THREAD)
{
    char out[256];
    if (len > sizeof out)
        return px_fail(ctx, "input of %zu bytes is too long", len);
    for (size_t i = 0; i < len; i++)
        out[i] = ((const char *)args)[len - 1 - i];
    return px_result(ctx, out, len);
}

PX_TASK(crash, PX_PROCESS)
{
    (void)ctx, (void)args, (void)len;
    abort(); /* kills only the pool's child; the task is reported FAILED */
}

int main(void)
{
    char name[64];
    snprintf(name, sizeof name, "/px-embedded-%d", (int)getpid());
    px_region *r;
    int rc = px_region_open(name, &(px_region_opts){.capacity = 1024}, &r);
    if (rc) {
        fprintf(stderr, "open: %s\n", px_strerror(rc));
        return 1;
    }
    px_task_register_all(r);
    px_workers *w;
    px_workers_start(r, &(px_workers_opts){.threads = 2, .processes = 1}, &w);

    const char *words[] = {"pollux", "castor", "gemini"};
    px_id ids[3], bad;
    for (int i = 0; i < 3; i++)
        px_submit(r, "reverse", words[i], strlen(words[i]), NULL, &ids[i]);
    px_submit(r, "crash", NULL, 0, NULL, &bad);

    int failures = 0;
    for (int i = 0; i < 3; i++) {
        char out[256];
        size_t n;
        rc = px_join(r, ids[i], 5.0, out, sizeof out, &n);
        printf("reverse(%s) = %.*s (%s)\n", words[i], (int)n, out, px_strerror(rc));
        failures += rc != 0;
    }
    rc = px_join(r, bad, 5.0, NULL, 0, NULL);
    px_task_info info;
    px_info(r, bad, &info);
    printf("crash: %s: %s\n", px_strerror(rc), info.error);
    failures += rc != PX_ETASKFAILED;

    px_workers_stop(w);
    px_region_close(r);
    px_region_destroy(name);
    return failures ? 1 : 0;
}
