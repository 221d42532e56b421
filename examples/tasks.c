/*
 * A task library for `pollux worker --lib`. Build it as a shared object; it
 * needs only the header (the worker provides the library's functions).
 *
 *     pollux worker --region /demo --lib ./libpx_example_tasks.so
 */
#include <pollux.h>

#include <ctype.h>
#include <stdint.h>
#include <string.h>

PX_TASK(upper, PX_THREAD)
{
    char out[1024];
    if (len > sizeof out)
        return px_fail(ctx, "input of %zu bytes is too long", len);
    for (size_t i = 0; i < len; i++)
        out[i] = (char)toupper(((const unsigned char *)args)[i]);
    return px_result(ctx, out, len);
}

/* Sums 64-bit integers; runs in a child process. */
PX_TASK(sum, PX_PROCESS)
{
    if (len % sizeof(int64_t))
        return px_fail(ctx, "args must be 64-bit integers, got %zu bytes", len);
    int64_t total = 0, v;
    for (size_t i = 0; i < len; i += sizeof v) {
        memcpy(&v, (const char *)args + i, sizeof v);
        total += v;
    }
    return px_result(ctx, &total, sizeof total);
}
