/*
 * Registration for the sleepers' barriers; see fence.h.
 */
#define _GNU_SOURCE
#include "fence.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

_Atomic int px__fence_registered;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A forked child has a new address space, which the kernel does not
 * register: it must not publish with plain stores until it registers. */
static void forget_registration(void)
{
    atomic_store(&px__fence_registered, 0);
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_registration);
}

static int membarrier(int cmd)
{
    return syscall(__NR_membarrier, cmd, 0, 0) == 0 ? 0 : -errno;
}

bool px__fence_register(void)
{
    pthread_once(&atfork_once, install_atfork);
    if (atomic_load(&px__fence_registered) == 1)
        return true;
    /* Registering twice is harmless, so racing threads need no lock. */
    if (membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0)
        return false;
    atomic_store(&px__fence_registered, 1);
    return true;
}

int px__fence_all(void)
{
    return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED);
}
