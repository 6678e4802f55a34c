/* An LD_PRELOAD shim of the kind anti-anti-debug kits use: ptrace() always "succeeds", so an
 * app that probes for a debugger with ptrace(PTRACE_TRACEME) learns nothing. With SHIM_UNSET
 * set it also removes LD_PRELOAD from the environment at load, to hide. */
#include <stdlib.h>

long ptrace(int request, ...) {
    (void)request;
    return 0;
}

__attribute__((constructor)) static void shim_hide(void) {
    if (getenv("SHIM_UNSET") != NULL) {
        unsetenv("LD_PRELOAD");
    }
}
