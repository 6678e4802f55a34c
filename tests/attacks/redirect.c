/* A preload that hands the genuine executable to whoever opens /proc/self/exe (the path in
 * GENUINE): a modified binary measured through libc's open then reports the original hash. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static const char *swap(const char *path) {
    const char *genuine = getenv("GENUINE");
    return (genuine != NULL && path != NULL && strcmp(path, "/proc/self/exe") == 0) ? genuine : path;
}

static mode_t mode_of(int flags, va_list args) {
    return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(args, mode_t) : 0;
}

#define REDIRECT_OPEN(name)                                                      \
    int name(const char *path, int flags, ...) {                                 \
        va_list args;                                                            \
        va_start(args, flags);                                                   \
        mode_t mode = mode_of(flags, args);                                      \
        va_end(args);                                                            \
        int (*real)(const char *, int, ...) = dlsym(RTLD_NEXT, #name);          \
        return real(swap(path), flags, mode);                                    \
    }

#define REDIRECT_OPENAT(name)                                                    \
    int name(int dir, const char *path, int flags, ...) {                        \
        va_list args;                                                            \
        va_start(args, flags);                                                   \
        mode_t mode = mode_of(flags, args);                                      \
        va_end(args);                                                            \
        int (*real)(int, const char *, int, ...) = dlsym(RTLD_NEXT, #name);     \
        return real(dir, swap(path), flags, mode);                               \
    }

REDIRECT_OPEN(open)
REDIRECT_OPEN(open64)
REDIRECT_OPENAT(openat)
REDIRECT_OPENAT(openat64)
