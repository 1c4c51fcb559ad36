/*
 * Prints the layout of the header's structs as the C compiler sees it, one
 * "name size align" line per struct and "struct.field offset" per field, for
 * tests/capi.rs to compare with the Rust side's #[repr(C)] structs.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>

#include "net_websocket_ev.h"

#define STRUCT(t) printf("%s %zu %zu\n", #t, sizeof(t), alignof(t))
#define FIELD(t, f) printf("%s.%s %zu\n", #t, #f, offsetof(t, f))

int main(void) {
    STRUCT(nwe_params);
    FIELD(nwe_params, buffering);
    FIELD(nwe_params, max_recv_size);
    FIELD(nwe_params, close_timeout);
    FIELD(nwe_params, idle_timeout);
    FIELD(nwe_params, keepalive);
    FIELD(nwe_params, message_timeout);
    FIELD(nwe_params, max_fragments);
    FIELD(nwe_params, max_queued_bytes);
    FIELD(nwe_params, fragment_size);
    FIELD(nwe_params, allowed_rsv);
    STRUCT(nwe_callbacks);
    FIELD(nwe_callbacks, user);
    FIELD(nwe_callbacks, on_msg_recv);
    FIELD(nwe_callbacks, on_frame_recv_start);
    FIELD(nwe_callbacks, on_frame_recv_chunk);
    FIELD(nwe_callbacks, on_frame_recv_end);
    FIELD(nwe_callbacks, on_close);
    FIELD(nwe_callbacks, genmask);
    return 0;
}
