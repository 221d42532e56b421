/*
 * Region creation, attachment and validation.
 */
#include "common.h"
#include "shm/region.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

Test(region, create_attach_and_share)
{
    char name[64];
    px_region *a = px_test_region(name, sizeof name, &(px_region_opts){.capacity = 128});
    px_region *b;
    cr_assert_eq(px_region_open(name, NULL, &b), 0);
    px_region_info ia, ib;
    cr_assert_eq(px_region_info_get(a, &ia), 0);
    cr_assert_eq(px_region_info_get(b, &ib), 0);
    cr_assert_eq(ib.capacity, 128, "an attacher sees the creator's capacity");
    cr_assert_eq(ia.processes, 2);
    px_region_close(b);
    px_region_close(a);
    cr_assert_eq(px_region_destroy(name), 0);
}

Test(region, exclusive_flags)
{
    char name[64];
    px_region *a = px_test_region(name, sizeof name, NULL), *b;
    cr_assert_eq(px_region_open(name, &(px_region_opts){.flags = PX_REGION_CREATE}, &b), -EEXIST);
    px_region_close(a);
    px_region_destroy(name);
    cr_assert_eq(px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH}, &b), -ENOENT);
    cr_assert_eq(
        px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH | PX_REGION_CREATE}, &b),
        -EINVAL);
}

Test(region, bad_arguments)
{
    px_region *r;
    cr_assert_eq(px_region_open(NULL, NULL, &r), -EINVAL);
    cr_assert_eq(px_region_open("", NULL, &r), -EINVAL);
    cr_assert_eq(px_region_open("/x", NULL, NULL), -EINVAL);
    cr_assert_eq(px_region_open("/x", &(px_region_opts){.lane_depth = 1000}, &r), -EINVAL);
    cr_assert_eq(px_region_close(NULL), -EINVAL);
}

Test(region, file_backed)
{
    char path[] = "/tmp/px-region-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    px_region *r;
    cr_assert_eq(px_region_open(path, &(px_region_opts){.capacity = 64}, &r), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "a name with a '/' inside is a file");
    cr_assert_eq(st.st_mode & 0777, 0600);
    px_region_close(r);
    cr_assert_eq(px_region_destroy(path), 0);
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

Test(region, foreign_file_is_corrupt)
{
    char path[] = "/tmp/px-foreign-XXXXXX";
    close(mkstemp(path));
    char junk[8192];
    memset(junk, 'x', sizeof junk);
    write_file(path, junk, sizeof junk);
    px_region *r;
    cr_assert_eq(px_region_open(path, NULL, &r), PX_ECORRUPT);
    write_file(path, junk, 10);
    cr_assert_eq(px_region_open(path, NULL, &r), PX_ECORRUPT, "too small");
    unlink(path);
}

/* Copies a real region's file, then damages one thing at a time. */
static void damaged(const char *what, size_t off, const void *bytes, size_t n, off_t new_size,
                    int want)
{
    char path[] = "/tmp/px-damage-XXXXXX";
    close(mkstemp(path));
    unlink(path);
    px_region *r;
    cr_assert_eq(px_region_open(path, &(px_region_opts){.capacity = 64}, &r), 0);
    px_region_close(r);
    int fd = open(path, O_RDWR);
    if (bytes)
        cr_assert_eq(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
    if (new_size >= 0)
        cr_assert_eq(ftruncate(fd, new_size), 0);
    close(fd);
    cr_assert_eq(px_region_open(path, NULL, &r), want, "%s", what);
    unlink(path);
}

Test(region, wrong_version_and_truncation)
{
    uint32_t abi = 99;
    damaged("abi", offsetof(struct px__hdr, abi), &abi, sizeof abi, -1, PX_EVERSION);
    uint32_t cap = 1u << 30;
    damaged("capacity", offsetof(struct px__hdr, capacity), &cap, sizeof cap, -1, PX_ECORRUPT);
    uint64_t off = 12345;
    damaged("offset", offsetof(struct px__hdr, off_slots), &off, sizeof off, -1, PX_ECORRUPT);
    damaged("truncated", 0, NULL, 0, 65536, PX_ECORRUPT);
}

Test(region, destroy_missing)
{
    cr_assert_eq(px_region_destroy("/px-test-does-not-exist"), -ENOENT);
}

/* A thread's state for a handle is found through a cache keyed by the
 * handle's id: a handle opened after another was closed (often at the same
 * address, since it is the same size; never under AddressSanitizer, which
 * holds freed memory back) must not get the closed one's freed state, nor
 * another open handle's. */
Test(region, thread_state_belongs_to_its_handle)
{
    char name[64], name2[64];
    const px_task_def def = {.name = "t", .mode = PX_THREAD};
    px_region *a = px_test_region_defs(name, sizeof name, &def, 1);
    for (int i = 0; i < 8; i++) {
        /* A submit gives this thread a lane of a's. */
        cr_assert_eq(px_submit(a, "t", NULL, 0, NULL, NULL), 0);
        struct px__tls *ta = px__tls_get(a);
        cr_assert(ta && ta->r == a);
        cr_assert_eq(ta->nlanes, 1);
        cr_assert_eq(px_region_close(a), 0);
        px_region *b;
        cr_assert_eq(px_region_open(name, NULL, &b), 0);
        struct px__tls *tb = px__tls_get(b);
        cr_assert(tb && tb->r == b, "round %d: the state of a closed handle", i);
        cr_assert_eq(tb->nlanes, 0);
        a = b;
    }
    /* Two open handles, in turn: each keeps its own. */
    px_region *c = px_test_region(name2, sizeof name2, &(px_region_opts){.capacity = 128});
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(px__tls_get(a)->r, a);
        cr_assert_eq(px__tls_get(c)->r, c);
    }
    px_region_close(c);
    px_region_close(a);
    px_region_destroy(name2);
    cr_assert_eq(px_region_destroy(name), 0);
}

Test(region, ids_format_and_parse)
{
    char buf[PX_ID_LEN + 1];
    px_id id = ((px_id)0xdeadbeef << 32) | 42, back;
    cr_assert_eq(px_id_format(id, buf), PX_ID_LEN);
    cr_assert_str_eq(buf, "deadbeef-0000002a");
    cr_assert_eq(px_id_parse(buf, &back), 0);
    cr_assert_eq(back, id);
    cr_assert_eq(px_id_parse("deadbeef0000002a", &back), -EINVAL);
    cr_assert_eq(px_id_parse("00000000-0000002a", &back), -EINVAL, "generation 0 is never valid");
    cr_assert_eq(px_id_parse("zzzzzzzz-0000002a", &back), -EINVAL);
    cr_assert_eq(px_id_parse(NULL, &back), -EINVAL);
}

Test(region, strerror_names_project_codes)
{
    cr_assert_str_neq(px_strerror(PX_ENOTASK), "unknown error");
    cr_assert_str_neq(px_strerror(PX_ECORRUPT), "unknown error");
    cr_assert_str_eq(px_strerror(-99999), "unknown error");
}
