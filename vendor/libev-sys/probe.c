/* Prints the sizes and field offsets of the libev structs that src/lib.rs mirrors,
 * one `name value` line each, for build.rs to turn into compile-time assertions. */
#include <stddef.h>
#include <stdio.h>
#include <ev.h>

#define SIZE(t) printf(#t " %zu\n", sizeof(t))
#define OFF(t, f) printf(#t "." #f " %zu\n", offsetof(t, f))

int main(void) {
    printf("version %d.%d\n", ev_version_major(), ev_version_minor());
    SIZE(ev_watcher);
    OFF(ev_watcher, active); OFF(ev_watcher, pending); OFF(ev_watcher, priority);
    OFF(ev_watcher, data); OFF(ev_watcher, cb);
    SIZE(ev_io);
    OFF(ev_io, active); OFF(ev_io, pending); OFF(ev_io, priority); OFF(ev_io, data);
    OFF(ev_io, cb); OFF(ev_io, next); OFF(ev_io, fd); OFF(ev_io, events);
    SIZE(ev_timer);
    OFF(ev_timer, active); OFF(ev_timer, pending); OFF(ev_timer, priority); OFF(ev_timer, data);
    OFF(ev_timer, cb); OFF(ev_timer, at); OFF(ev_timer, repeat);
    SIZE(ev_signal);
    OFF(ev_signal, active); OFF(ev_signal, pending); OFF(ev_signal, priority); OFF(ev_signal, data);
    OFF(ev_signal, cb); OFF(ev_signal, next); OFF(ev_signal, signum);
    SIZE(ev_idle);
    OFF(ev_idle, active); OFF(ev_idle, pending); OFF(ev_idle, priority); OFF(ev_idle, data);
    OFF(ev_idle, cb);
    SIZE(ev_async);
    OFF(ev_async, active); OFF(ev_async, pending); OFF(ev_async, priority); OFF(ev_async, data);
    OFF(ev_async, cb); OFF(ev_async, sent);
    return 0;
}
