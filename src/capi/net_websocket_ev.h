/*
 * net_websocket_ev.h: the C API of net-websocket-ev (cargo feature `capi`).
 *
 * WebSocket (RFC 6455) connections on your libev loop, with the model of Perl's
 * Net::WebSocket::EV: a connection on the caller's loop, callbacks, nwe_queue_msg,
 * nwe_queue_fragmented, nwe_wait, start/stop, shutdown, close.
 *
 * Build: scripts/capi.sh (a static and a shared library). Link:
 *   cc -std=c99 app.c -I src/capi libnet_websocket_ev.a -lev -lpthread -ldl -lm
 *
 * This header is checked against the Rust side by tests/capi.rs (every prototype,
 * struct field and constant): a change on one side fails the test until the other
 * follows.
 *
 * OWNERSHIP AND LIFETIMES
 * - Threads: everything about one loop (its connections, their handles) is used from
 *   the thread that runs that loop. Handshake objects may be used from any one thread
 *   at a time.
 * - The loop: yours. It must outlive every connection on it: call
 *   nwe_abort_all(loop) before ev_loop_destroy(loop). The library never destroys it.
 *   (The library links the same shared libev as your program.)
 * - The fd: nwe_server_new / nwe_client_new take it over IN EVERY CASE, success or
 *   failure (it is closed on failure). From then on the connection owns it and closes
 *   it when the connection ends; never close it yourself.
 * - The handle (nwe_ws *): yours from a successful nwe_*_new until you call
 *   nwe_release(ws), exactly once. It stays valid after the connection ended (calls
 *   then return NWE_ECLOSED, accessors keep answering); after nwe_release, the
 *   pointer is gone, as after free(). nwe_release may be called anywhere, inside
 *   one of this connection's callbacks too: the memory is freed once that callback
 *   has returned. Releasing an open connection aborts it; from the release on, no
 *   callback gets this handle again (not even on_close).
 * - Callbacks: any callback may call any function on the same connection (queue,
 *   close, abort, release...). on_close runs once, from the loop, never inside one
 *   of your calls. The `user` pointer of nwe_callbacks is never read by the library:
 *   free it after on_close or after nwe_release.
 * - Buffers handed to callbacks (msg, data) are lent for the call only: copy what
 *   you keep. Buffers you pass in (nwe_queue_msg, initial bytes, handshake feeds) are
 *   copied before the call returns.
 * - Producers (nwe_queue_fragmented): on success the library holds `user` and calls
 *   `done(user)` exactly once when it no longer needs it (the message ended, failed,
 *   or the connection ended or was released; possibly inside nwe_release). `done`
 *   must only free: it may run while the library tears the producer down, so it
 *   must not call functions on the connection. On failure nothing is called and
 *   `user` stays yours.
 * - nwe_wait: on success `waited` is called exactly once; with ws == NULL if the
 *   handle has been released by then (or the connection is being torn down: then
 *   do not call anything on it). On failure it is never called.
 * - Strings and byte ranges the library returns are owned by the object they came
 *   from and valid as long as each function says (at most until its release/free).
 * - Errors are negative int codes (NWE_E*); nwe_strerror names them.
 * - Panics: no Rust panic crosses into C. A panic on a connection (a library bug)
 *   closes it with 1011, is kept for nwe_last_panic and makes the call return
 *   NWE_EPANIC; one in the library's own loop callbacks makes ev_run return early
 *   and waits in nwe_take_panic.
 */
#ifndef NET_WEBSOCKET_EV_H
#define NET_WEBSOCKET_EV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;

/* ---- error codes ---------------------------------------------------------------- */

#define NWE_OK 0
#define NWE_EINVAL (-1)             /* a NULL pointer, a length over its bound, ...  */
#define NWE_ECLOSED (-2)            /* closed or closing: nothing more can be queued */
#define NWE_EOPCODE (-3)            /* an opcode that cannot be queued               */
#define NWE_EUTF8 (-4)              /* text that is not UTF-8                        */
#define NWE_ECONTROL_TOO_LONG (-5)  /* a control payload over 125 bytes             */
#define NWE_ECLOSE_CODE (-6)        /* a close code that may not be sent             */
#define NWE_EREASON (-7)            /* reason > 123 bytes, not UTF-8, or without code */
#define NWE_EQUEUE_FULL (-8)        /* the send queue is full (max_queued_bytes)      */
#define NWE_ENOT_PENDING (-9)       /* no fragmented message is pending               */
#define NWE_EFRAGMENT_TOO_LONG (-10) /* a producer wrote more than its buffer         */
#define NWE_EBUSY (-11)             /* called from inside genmask                     */
#define NWE_EIO (-12)               /* a socket call failed while setting up          */
#define NWE_ELOOP (-13)             /* the loop cannot be used (default loop taken)   */
#define NWE_EHANDSHAKE (-14)        /* the opening handshake failed                   */
#define NWE_ESTATE (-15)            /* the call does not fit the object's state       */
#define NWE_EPANIC (-16)            /* the library panicked (a bug): closing with 1011 */

/* The text of an error code: a static string, never NULL. */
const char *nwe_strerror(int code);

/* ---- opcodes, RSV bits, producer answers, close causes -------------------------- */

#define NWE_OP_CONTINUATION 0
#define NWE_OP_TEXT 1
#define NWE_OP_BINARY 2
#define NWE_OP_CLOSE 8
#define NWE_OP_PING 9
#define NWE_OP_PONG 10

#define NWE_RSV1 4
#define NWE_RSV2 2
#define NWE_RSV3 1

#define NWE_FRAGMENT_DATA 0  /* a piece: *len bytes of buf, more to come            */
#define NWE_FRAGMENT_EOF 1   /* the last piece (*len may be 0)                      */
#define NWE_FRAGMENT_PAUSE 2 /* nothing ready: not asked again until resumed        */
#define NWE_FRAGMENT_ERROR (-1) /* give up: the peer gets close 1011 (any other value too) */

#define NWE_CAUSE_OPEN 0
#define NWE_CAUSE_PEER_CLOSE 1
#define NWE_CAUSE_LOCAL_CLOSE 2
#define NWE_CAUSE_PROTOCOL_ERROR 3
#define NWE_CAUSE_PRODUCER_ERROR 4
#define NWE_CAUSE_IDLE_TIMEOUT 5
#define NWE_CAUSE_MESSAGE_TIMEOUT 6
#define NWE_CAUSE_CLOSE_TIMEOUT 7
#define NWE_CAUSE_EOF 8
#define NWE_CAUSE_IO 9
#define NWE_CAUSE_TLS 10
#define NWE_CAUSE_ABORTED 11
#define NWE_CAUSE_SHUTDOWN 12

/* ---- parameters ---------------------------------------------------------------- */

/* Limits and timeouts. Fill with nwe_params_init, then change what you need.
 * Timeouts are in seconds; 0 turns one off; negative or NaN is NWE_EINVAL. */
typedef struct nwe_params {
    int buffering;             /* 1 (default): assemble messages for on_msg_recv;
                                  0: data only through the frame callbacks */
    uint64_t max_recv_size;    /* largest message (frame if not buffering): 64 MiB; over it, 1009 */
    double close_timeout;      /* a closing connection without progress: 10 s */
    double idle_timeout;       /* no input for this long: close 1001; default 0 (off) */
    double keepalive;          /* a ping after this long without input; default 0 (off) */
    double message_timeout;    /* a message taking longer: close 1008; default 0 (off) */
    uint32_t max_fragments;    /* frames per message, over it 1009; default 0 (no limit) */
    size_t max_queued_bytes;   /* send queue bound (NWE_EQUEUE_FULL): 16 MiB */
    size_t fragment_size;      /* a producer's buffer size, >= 1: 4096 */
    unsigned allowed_rsv;      /* RSV bits the peer may set (NWE_RSV*): none */
} nwe_params;

/* Fills *params with the defaults (those of the Rust Params). Ignores NULL. */
void nwe_params_init(nwe_params *params);

/* ---- connections ---------------------------------------------------------------- */

typedef struct nwe_ws nwe_ws;

/* Each complete text, binary, ping or pong message (with buffering; never close);
 * opcode of the first frame; status is 0. msg is lent for the call. */
typedef void (*nwe_msg_recv_fn)(nwe_ws *ws, void *user, unsigned rsv, unsigned opcode,
                                const uint8_t *msg, size_t len, unsigned status);
/* Each frame's header (control and close frames too; continuation is opcode 0). */
typedef void (*nwe_frame_start_fn)(nwe_ws *ws, void *user, int fin, unsigned rsv,
                                   unsigned opcode, uint64_t len);
/* A piece of a frame's payload (an empty frame gives one empty chunk). */
typedef void (*nwe_frame_chunk_fn)(nwe_ws *ws, void *user, const uint8_t *data,
                                   size_t len);
/* The end of a frame. */
typedef void (*nwe_frame_end_fn)(nwe_ws *ws, void *user);
/* Once, after the fd is closed: the code of the peer's close frame, 1005 if it had
 * none, 1006 if none came. The handle stays valid: release it here or later. */
typedef void (*nwe_close_fn)(nwe_ws *ws, void *user, unsigned code);
/* A client's 4 mask bytes for the next frame. */
typedef void (*nwe_genmask_fn)(nwe_ws *ws, void *user, uint8_t *mask);

/* The callbacks of a connection; any may be NULL. Copied by nwe_*_new. */
typedef struct nwe_callbacks {
    void *user;
    nwe_msg_recv_fn on_msg_recv;
    nwe_frame_start_fn on_frame_recv_start;
    nwe_frame_chunk_fn on_frame_recv_chunk;
    nwe_frame_end_fn on_frame_recv_end;
    nwe_close_fn on_close;
    nwe_genmask_fn genmask; /* NULL: random masks from a CSPRNG */
} nwe_callbacks;

/* Wraps the connected socket fd, whose opening handshake is done, in a server
 * connection on loop: it starts reading at once. initial/initial_len: bytes that
 * came after the handshake (NULL/0 for none), read first. params and callbacks may
 * be NULL (defaults, none). On success *out is the handle (NULL on failure).
 * The fd belongs to the library in every case (closed on failure).
 * Errors: NWE_EINVAL, NWE_ELOOP, NWE_EIO. */
int nwe_server_new(struct ev_loop *loop, int fd, const nwe_params *params,
                   const nwe_callbacks *callbacks, const uint8_t *initial,
                   size_t initial_len, nwe_ws **out);
/* The same as the client side: masks every frame it sends. */
int nwe_client_new(struct ev_loop *loop, int fd, const nwe_params *params,
                   const nwe_callbacks *callbacks, const uint8_t *initial,
                   size_t initial_len, nwe_ws **out);

/* Gives the handle back (exactly once; NULL is ignored). An open connection is
 * aborted (its fd closed from the loop a moment later), and no callback runs with
 * this handle from now on. Safe inside the connection's own callbacks. */
void nwe_release(nwe_ws *ws);

/* Queues one message of opcode NWE_OP_TEXT (valid UTF-8), _BINARY, _PING or _PONG
 * (control payloads at most 125 bytes); msg may be NULL when len is 0. Copied:
 * the buffer is the caller's again on return (the msg of an on_msg_recv running
 * now, whole, of 16 KiB or more, queued on a server is shared, not copied: an
 * echo or relay costs no copy). A close goes through nwe_close. */
int nwe_queue_msg(nwe_ws *ws, unsigned opcode, const uint8_t *msg, size_t len);

/* A producer: write up to cap bytes to buf, set *len (<= cap), return an
 * NWE_FRAGMENT_* value. Called when the socket can take the next frame. */
typedef int (*nwe_produce_fn)(nwe_ws *ws, void *user, uint8_t *buf, size_t cap,
                              size_t *len);
/* The library is done with a producer's user. */
typedef void (*nwe_done_fn)(void *user);

/* Queues a message of opcode (text or binary) produced piece by piece by produce
 * (not NULL); done (may be NULL) gets user once the library no longer needs it
 * (see OWNERSHIP). A text piece that is not UTF-8, or *len > cap, fails the producer
 * (close 1011). */
int nwe_queue_fragmented(nwe_ws *ws, unsigned opcode, nwe_produce_fn produce,
                         nwe_done_fn done, void *user);
/* Asks a producer that returned NWE_FRAGMENT_PAUSE again. */
int nwe_resume_fragmented(nwe_ws *ws);

/* closed 0: everything queued was written; closed 1: the connection ended with
 * unsent messages not (fully) written. ws is NULL if the handle was released. */
typedef void (*nwe_wait_fn)(nwe_ws *ws, void *user, int closed, size_t unsent);
/* Calls waited once the send queue is empty, from the loop (exactly once on
 * success; never on failure). */
int nwe_wait(nwe_ws *ws, nwe_wait_fn waited, void *user);

/* Messages queued or partly sent, control frames included. */
int nwe_queued_count(nwe_ws *ws, size_t *count);
/* Bytes queued and not yet written. */
int nwe_queued_bytes(nwe_ws *ws, size_t *bytes);

int nwe_start(nwe_ws *ws);          /* resumes both directions */
int nwe_stop(nwe_ws *ws);           /* pauses both directions; nothing is lost */
int nwe_start_read(nwe_ws *ws);     /* resumes reading */
int nwe_stop_read(nwe_ws *ws);      /* pauses reading: not even EOF is noticed */
int nwe_start_write(nwe_ws *ws);    /* resumes writing */
int nwe_stop_write(nwe_ws *ws);     /* pauses writing, control frames too */
int nwe_shutdown_read(nwe_ws *ws);  /* ends reading; the end comes once drained */
int nwe_shutdown_write(nwe_ws *ws); /* ends writing; the queue is dropped */
/* Ends the connection without a closing handshake: queued data is dropped; from
 * the loop a moment later the fd is closed and on_close runs (1006). */
int nwe_abort(nwe_ws *ws);

/* Starts the closing handshake: what was queued goes out first, then the close
 * frame; the fd is closed once the peer's close arrives (or the close timeout).
 * code 0: a close without code (then len must be 0). reason: len bytes of UTF-8,
 * at most 123, NULL when len is 0. */
int nwe_close(nwe_ws *ws, unsigned code, const char *reason, size_t len);

/* 1 if the connection is over or its end decided, 0 if open. */
int nwe_is_closed(nwe_ws *ws);
/* The peer's close code so far: 1006 until one arrives, 1005 if it had none. */
int nwe_status_code_received(nwe_ws *ws);
/* The code of the close frame we sent, once written (1005: no code); 0 before. */
int nwe_status_code_sent(nwe_ws *ws);
/* The peer's close reason: returns 1 and sets *reason (NUL-terminated) and *len,
 * valid until the next call of this function on ws or its release; 0 if none. */
int nwe_close_reason_received(nwe_ws *ws, const char **reason, size_t *len);
/* Why the connection ended or is ending: NWE_CAUSE_* (NWE_CAUSE_OPEN while open). */
int nwe_close_cause(nwe_ws *ws);
/* The name of an NWE_CAUSE_* value: a static string, never NULL. */
const char *nwe_close_cause_name(int cause);
/* The socket while the connection has it (do not close it), else NWE_ECLOSED. */
int nwe_fd(nwe_ws *ws);
/* The text of the first panic caught on this connection (valid until its release),
 * or NULL. */
const char *nwe_last_panic(nwe_ws *ws);
/* Ends every connection on loop now (each on_close runs inside this call) and
 * returns how many there were. Call it before destroying the loop. */
int nwe_abort_all(struct ev_loop *loop);
/* Takes the last panic caught outside a connection call on this thread (in the
 * library's loop callbacks: ev_run returned early; or in a handshake call): copies
 * its text (cut, NUL-terminated) into buf of len bytes and returns 1; 0 if none. */
int nwe_take_panic(char *buf, size_t len);

/* ---- opening handshake: server ------------------------------------------------- */

typedef struct nwe_server_handshake nwe_server_handshake;

/* A new server handshake accepting a request head of at most max_header_size
 * bytes (0: 8192). Free it with nwe_server_handshake_free. */
nwe_server_handshake *nwe_server_handshake_new(size_t max_header_size);
/* Feeds the bytes read so far (copied): 0 more needed, 1 complete and valid,
 * NWE_EHANDSHAKE invalid (write the error response, close), NWE_ESTATE once over. */
int nwe_server_handshake_feed(nwe_server_handshake *hs, const uint8_t *data, size_t len);
/* The bytes to write: the 101 response selecting protocol (NULL: none; else one the
 * client offered, or NWE_EINVAL), or after NWE_EHANDSHAKE the HTTP error response.
 * Valid until the next call of this function or the free. */
int nwe_server_handshake_response(nwe_server_handshake *hs, const char *protocol,
                                  const uint8_t **data, size_t *len);
/* The bytes after the request head: pass them to nwe_server_new. Until the free. */
int nwe_server_handshake_leftover(nwe_server_handshake *hs, const uint8_t **data,
                                  size_t *len);
/* The request's path once complete, else NULL. Until the free. */
const char *nwe_server_handshake_path(nwe_server_handshake *hs);
/* A request header's value (name case-insensitive), NULL if absent. Until the free. */
const char *nwe_server_handshake_header(nwe_server_handshake *hs, const char *name);
/* Why it failed, or NULL. Until the free. */
const char *nwe_server_handshake_error(nwe_server_handshake *hs);
/* Frees hs and every pointer it returned. Ignores NULL. */
void nwe_server_handshake_free(nwe_server_handshake *hs);

/* ---- opening handshake: client ------------------------------------------------- */

typedef struct nwe_client_handshake nwe_client_handshake;

/* A client handshake for url (ws://host[:port][/path]; no wss: the C API has no TLS)
 * offering the comma-separated subprotocols (NULL: none). NWE_EINVAL for a bad URL. */
int nwe_client_handshake_new(const char *url, const char *protocols,
                             nwe_client_handshake **out);
/* The host and port to connect to. Until the free. */
const char *nwe_client_handshake_host(nwe_client_handshake *hs);
int nwe_client_handshake_port(nwe_client_handshake *hs);
/* The request bytes to write. Until the free. */
int nwe_client_handshake_request(nwe_client_handshake *hs, const uint8_t **data,
                                 size_t *len);
/* Feeds the response bytes read so far (copied): 0 more needed, 1 complete and
 * valid, NWE_EHANDSHAKE invalid, NWE_ESTATE once over. */
int nwe_client_handshake_feed(nwe_client_handshake *hs, const uint8_t *data, size_t len);
/* The subprotocol the server selected, or NULL. Until the free. */
const char *nwe_client_handshake_protocol(nwe_client_handshake *hs);
/* The bytes after the response head: pass them to nwe_client_new. Until the free. */
int nwe_client_handshake_leftover(nwe_client_handshake *hs, const uint8_t **data,
                                  size_t *len);
/* Why it failed, or NULL. Until the free. */
const char *nwe_client_handshake_error(nwe_client_handshake *hs);
/* Frees hs and every pointer it returned. Ignores NULL. */
void nwe_client_handshake_free(nwe_client_handshake *hs);

#ifdef __cplusplus
}
#endif

#endif /* NET_WEBSOCKET_EV_H */
