/*
 * Task definitions and queues: validation, idempotent registration,
 * conflicts, lookup, the PX_TASK blueprint style.
 */
#include "common.h"
#include "shm/region.h"

#include <errno.h>
#include <string.h>

static char rname[64];

static void cleanup(void)
{
    px_region_destroy(rname);
}

TestSuite(defs, .fini = cleanup);

static px_region *open_defs(void)
{
    return px_test_region(rname, sizeof rname,
                          &(px_region_opts){.capacity = 64,
                                            .max_payload = 4096,
                                            .arena_bytes = 64 * 64,
                                            .lanes = 4,
                                            .lane_depth = 8});
}

static int body_a(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx, (void)args, (void)len;
    return 0;
}

static int body_b(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx, (void)args, (void)len;
    return 1;
}

/* Blueprint-style definitions of this file: px_task_register_all binds
 * exactly these three. */
PX_TASK(bp_thread, PX_THREAD)
{
    return px_result(ctx, args, len);
}

PX_TASK(bp_process, PX_PROCESS, .queue = "bp-queue", .daemon = 1, .priority = 3)
{
    (void)args, (void)len;
    return px_fail(ctx, "nope");
}

PX_TASK(bp_retry, PX_THREAD, .max_retries = 2, .retry_delay_s = 0.5, .time_limit_s = 9,
        .cancellable = 1)
{
    (void)ctx, (void)args, (void)len;
    return 0;
}

static uint32_t defined(px_region *r)
{
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    return info.tasks_defined;
}

Test(defs, validation)
{
    px_region *r = open_defs();
    char name64[65], name63[64], q32[33], q31[32];
    memset(name64, 'n', 64);
    name64[64] = '\0';
    memset(name63, 'n', 63);
    name63[63] = '\0';
    memset(q32, 'q', 32);
    q32[32] = '\0';
    memset(q31, 'q', 31);
    q31[31] = '\0';

    cr_assert_eq(px_task_register(r, NULL), -EINVAL);
    cr_assert_eq(px_task_register(NULL, &(px_task_def){.name = "x", .mode = PX_THREAD}), -EINVAL);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = NULL, .mode = PX_THREAD}), -EINVAL);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "", .mode = PX_THREAD}), -EINVAL);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "x", .mode = 0}), -EINVAL,
                 "mode is mandatory");
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "x", .mode = 3}), -EINVAL);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = name64, .mode = PX_THREAD}), -EINVAL,
                 "64-byte name");
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "x", .mode = PX_THREAD, .queue = q32}),
                 -EINVAL, "32-byte queue name");
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "x", .mode = PX_THREAD, .queue = ""}),
                 -EINVAL);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "x", .mode = PX_THREAD, .max_retries = -1}),
        -EINVAL);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "x", .mode = PX_THREAD, .retry_delay_s = -1}),
        -EINVAL);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "x", .mode = PX_THREAD, .time_limit_s = -1}),
        -EINVAL);
    cr_assert_eq(defined(r), 0, "nothing was recorded");
    cr_assert_eq(px__def_find(r, "x"), PX_ENOTASK);

    /* The longest names are accepted. */
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = name63, .mode = PX_THREAD}), 0);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "x", .mode = PX_PROCESS, .queue = q31}),
                 0);
    cr_assert_geq(px__def_find(r, name63), 0);
    cr_assert_geq(px__queue_find(r, q31, false), 1);
    cr_assert_eq(defined(r), 2);
    px_region_close(r);
}

Test(defs, record_fields)
{
    px_region *r = open_defs();
    px_task_def def = {.name = "full",
                       .fn = body_a,
                       .mode = PX_PROCESS,
                       .daemon = 1,
                       .cancellable = 1,
                       .queue = "fq",
                       .priority = PX_PRIORITY_HIGH,
                       .max_retries = 3,
                       .retry_delay_s = 1.5,
                       .time_limit_s = 2.5};
    cr_assert_eq(px_task_register(r, &def), 0);
    int d = px__def_find(r, "full");
    cr_assert_geq(d, 0);
    struct px__def *e = &r->defs[d];
    cr_assert_eq(atomic_load(&e->state), PX__DEF_READY);
    cr_assert_str_eq(e->name, "full");
    cr_assert_eq(e->mode, PX_PROCESS);
    cr_assert_eq(e->queue, (uint32_t)px__queue_find(r, "fq", false));
    cr_assert_eq(e->flags, PX__DEF_DAEMON | PX__DEF_CANCELLABLE);
    cr_assert_eq(e->priority, PX_PRIORITY_HIGH);
    cr_assert_eq(e->max_retries, 3);
    cr_assert_eq(e->retry_delay_s, 1.5);
    cr_assert_eq(e->time_limit_s, 2.5);
    cr_assert_eq(atomic_load(&r->fns[d]), body_a, "the body is bound for this handle");
    cr_assert_str_eq(px__def_name(r, (uint32_t)d), "full");
    cr_assert_str_eq(px__def_name(r, PX__MAX_DEFS + 3), "?");
    px_region_close(r);
}

Test(defs, strings_are_copied)
{
    px_region *r = open_defs();
    char name[16] = "copied", queue[16] = "cq";
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = name, .mode = PX_THREAD, .queue = queue}), 0);
    strcpy(name, "changed");
    strcpy(queue, "zz");
    cr_assert_geq(px__def_find(r, "copied"), 0);
    cr_assert_eq(px__def_find(r, "changed"), PX_ENOTASK);
    cr_assert_geq(px__queue_find(r, "cq", false), 0);
    cr_assert_eq(px__queue_find(r, "zz", false), -ENOENT);
    px_region_close(r);
}

Test(defs, reregister_same_is_idempotent)
{
    px_region *r = open_defs();
    px_task_def def = {.name = "twice", .fn = body_a, .mode = PX_THREAD};
    cr_assert_eq(px_task_register(r, &def), 0);
    int d = px__def_find(r, "twice");
    cr_assert_eq(px_task_register(r, &def), 0);
    cr_assert_eq(px__def_find(r, "twice"), d, "the same entry");
    cr_assert_eq(defined(r), 1);
    /* NULL queue and "default" are the same queue. */
    def.queue = "default";
    cr_assert_eq(px_task_register(r, &def), 0);
    /* A producer that registers without a body keeps the bound one. */
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "twice", .mode = PX_THREAD}), 0);
    cr_assert_eq(atomic_load(&r->fns[d]), body_a);
    /* Another body rebinds it for this handle. */
    def.fn = body_b;
    cr_assert_eq(px_task_register(r, &def), 0);
    cr_assert_eq(atomic_load(&r->fns[d]), body_b);
    cr_assert_eq(defined(r), 1);
    px_region_close(r);
}

Test(defs, conflicting_mode_or_queue_is_eexist)
{
    px_region *r = open_defs();
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "t", .fn = body_a, .mode = PX_THREAD}),
                 0);
    int d = px__def_find(r, "t");
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "t", .fn = body_b, .mode = PX_PROCESS}),
                 -EEXIST);
    cr_assert_eq(px_task_register(
                     r, &(px_task_def){.name = "t", .fn = body_b, .mode = PX_THREAD, .queue = "q"}),
                 -EEXIST);
    cr_assert_eq(r->defs[d].mode, PX_THREAD, "the definition is unchanged");
    cr_assert_eq(r->defs[d].queue, 0);
    cr_assert_eq(atomic_load(&r->fns[d]), body_a, "and so is the binding");
    cr_assert_eq(defined(r), 1);
    px_region_close(r);
}

Test(defs, unknown_names)
{
    px_region *r = open_defs();
    px_id id = 123;
    cr_assert_eq(px__def_find(r, "missing"), PX_ENOTASK);
    cr_assert_eq(px_submit(r, "missing", NULL, 0, NULL, &id), PX_ENOTASK);
    cr_assert_eq(id, 123);
    cr_assert_eq(px__def_find(r, NULL), -EINVAL);
    cr_assert_eq(px__def_find(r, ""), -EINVAL);
    cr_assert_str_neq(px_strerror(PX_ENOTASK), "unknown error");
    px_region_info info;
    px_region_info_get(r, &info);
    cr_assert_eq(info.slots_used, 0);
    px_region_close(r);
}

Test(defs, definitions_are_shared_bodies_are_not)
{
    px_region *a = open_defs();
    cr_assert_eq(
        px_task_register(
            a, &(px_task_def){.name = "shared", .fn = body_a, .mode = PX_PROCESS, .queue = "sq"}),
        0);
    px_region *b;
    cr_assert_eq(px_region_open(rname, NULL, &b), 0);
    int d = px__def_find(b, "shared");
    cr_assert_geq(d, 0, "another handle sees the definition");
    cr_assert_eq(d, px__def_find(a, "shared"));
    cr_assert_null(atomic_load(&b->fns[d]), "but not the body");
    cr_assert_eq(b->defs[d].queue, (uint32_t)px__queue_find(b, "sq", false));
    px_id id;
    cr_assert_eq(px_submit(b, "shared", NULL, 0, NULL, &id), 0, "a producer needs no body");
    cr_assert_eq(px_task_register(b, &(px_task_def){.name = "shared", .mode = PX_THREAD}), -EEXIST);
    cr_assert_eq(
        px_task_register(
            b, &(px_task_def){.name = "shared", .mode = PX_PROCESS, .queue = "sq", .fn = body_b}),
        0);
    cr_assert_eq(atomic_load(&b->fns[d]), body_b);
    cr_assert_eq(atomic_load(&a->fns[d]), body_a, "bindings are per handle");
    px_region_close(b);
    px_region_close(a);
}

Test(defs, register_all_binds_this_files_tasks)
{
    px_region *r = open_defs();
    int n = px_task_register_all(r);
    cr_assert_eq(n, 3, "PX_TASK definitions in this file: %d", n);
    cr_assert_eq(defined(r), 3);
    int t = px__def_find(r, "bp_thread"), p = px__def_find(r, "bp_process"),
        x = px__def_find(r, "bp_retry");
    cr_assert_geq(t, 0);
    cr_assert_geq(p, 0);
    cr_assert_geq(x, 0);
    cr_assert_eq(r->defs[t].mode, PX_THREAD);
    cr_assert_eq(r->defs[t].queue, 0);
    cr_assert_eq(r->defs[p].mode, PX_PROCESS);
    cr_assert_eq(r->defs[p].queue, (uint32_t)px__queue_find(r, "bp-queue", false));
    cr_assert_eq(r->defs[p].flags, PX__DEF_DAEMON);
    cr_assert_eq(r->defs[p].priority, 3);
    cr_assert_eq(r->defs[x].max_retries, 2);
    cr_assert_eq(r->defs[x].retry_delay_s, 0.5);
    cr_assert_eq(r->defs[x].time_limit_s, 9);
    cr_assert_eq(r->defs[x].flags, PX__DEF_CANCELLABLE);
    cr_assert_not_null(atomic_load(&r->fns[t]));
    cr_assert_not_null(atomic_load(&r->fns[p]));
    cr_assert_neq(atomic_load(&r->fns[t]), atomic_load(&r->fns[p]));
    cr_assert_eq(px_task_register_all(r), 3, "idempotent");
    cr_assert_eq(defined(r), 3);
    px_region_close(r);
}

Test(defs, register_range_edges)
{
    px_region *r = open_defs();
    px_task_def defs[3] = {{.name = "r1", .mode = PX_THREAD},
                           {.name = "r2", .mode = 0},
                           {.name = "r3", .mode = PX_THREAD}};
    cr_assert_eq(px_task_register_range(r, NULL, NULL), 0);
    cr_assert_eq(px_task_register_range(r, defs, defs), 0);
    cr_assert_eq(px_task_register_range(r, defs + 2, defs), -EINVAL);
    cr_assert_eq(px_task_register_range(NULL, defs, defs + 1), -EINVAL);
    cr_assert_eq(px_task_register_range(r, defs, defs + 1), 1);
    cr_assert_eq(px_task_register_range(r, defs, defs + 3), -EINVAL, "stops at the bad one");
    cr_assert_eq(px__def_find(r, "r3"), PX_ENOTASK);
    px_region_close(r);
}

Test(defs, queues_are_created_by_name)
{
    px_region *r = open_defs();
    cr_assert_eq(px__queue_find(r, "default", false), 0, "\"default\" is queue 0");
    cr_assert_eq(px__queue_find(r, NULL, false), 0);
    cr_assert_eq(px__queue_find(r, "images", false), -ENOENT);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "img", .mode = PX_THREAD, .queue = "images"}),
        0);
    int q = px__queue_find(r, "images", false);
    cr_assert_geq(q, 1);
    cr_assert_str_eq(r->queues[q].name, "images");
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "img2", .mode = PX_THREAD, .queue = "images"}),
        0);
    cr_assert_eq(px__queue_find(r, "images", false), q, "one queue per name");
    cr_assert_eq(atomic_load(&r->hdr->nqueues), 2);

    /* A submit to a queue by name creates it too. */
    px_id id;
    cr_assert_eq(px_submit(r, "img", NULL, 0, &(px_submit_opts){.queue = "other"}, &id), 0);
    int o = px__queue_find(r, "other", false);
    cr_assert_geq(o, 0);
    cr_assert_neq(o, q);
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_str_eq(info.queue, "other");

    /* Up to PX__MAX_QUEUES queues. */
    char name[16];
    uint32_t n = atomic_load(&r->hdr->nqueues);
    for (uint32_t i = n; i < PX__MAX_QUEUES; i++) {
        snprintf(name, sizeof name, "q%u", i);
        cr_assert_eq(px__queue_find(r, name, true), (int)i);
    }
    cr_assert_eq(px__queue_find(r, "one-too-many", true), -ENOSPC);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "late", .mode = PX_THREAD, .queue = "nq"}),
        -ENOSPC);
    cr_assert_eq(px__def_find(r, "late"), PX_ENOTASK);
    px_region_close(r);
}

Test(defs, many_definitions_and_a_full_table)
{
    px_region *r = open_defs();
    char name[32];
    for (uint32_t i = 0; i < PX__MAX_DEFS; i++) {
        snprintf(name, sizeof name, "task-%u", i);
        int rc = px_task_register(r, &(px_task_def){.name = name, .mode = PX_THREAD});
        cr_assert_eq(rc, 0, "definition %u: %d", i, rc);
    }
    cr_assert_eq(defined(r), PX__MAX_DEFS);
    uint32_t seen[PX__MAX_DEFS / 32] = {0};
    for (uint32_t i = 0; i < PX__MAX_DEFS; i++) {
        snprintf(name, sizeof name, "task-%u", i);
        int d = px__def_find(r, name);
        cr_assert_geq(d, 0, "%s is found", name);
        cr_assert_str_eq(r->defs[d].name, name);
        cr_assert_eq(seen[d / 32] & (1u << (d % 32)), 0, "one entry per name");
        seen[d / 32] |= 1u << (d % 32);
    }
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "extra", .mode = PX_THREAD}), -ENOSPC);
    cr_assert_eq(px__def_find(r, "extra"), PX_ENOTASK, "lookup ends on a full table");
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "task-7", .mode = PX_THREAD}), 0,
                 "re-registering still works when full");
    px_region_close(r);
}
