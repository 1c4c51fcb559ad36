/*
 * Ownership and re-entrancy of the C API, C side: a server and a client connection
 * over a socketpair on one loop. Run by tests/capi.rs; prints "ok NAME" per check and
 * exits 0 when all hold (1 and a message on the first failure).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "net_websocket_ev.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* What the callbacks saw. */
struct seen {
    int msgs, closes, waits, wait_null, dones, produced;
    unsigned close_code;
    size_t last_len;
    int release_in_msg;      /* release the handle inside on_msg_recv */
    int reply_and_close;     /* queue a reply, close, queue again inside on_msg_recv */
    int reentrant_rc;        /* what the queue after the close returned */
    nwe_ws *self;
};

static struct ev_loop *loop;

static void tick(struct ev_loop *l, ev_timer *w, int revents) { (void)l; (void)w; (void)revents; }

/* Runs the loop until *flag is set, at most `turns` iterations: a stuck check fails
 * instead of hanging (a 50 ms ticker keeps each iteration from blocking for long).
 * The peers are in this process, so what a check waits for is ready at once. */
static void run_until(int *flag, int turns) {
    ev_timer ticker;
    ev_timer_init(&ticker, tick, 0.05, 0.05);
    ev_timer_start(loop, &ticker);
    while (!*flag && turns-- > 0) ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &ticker);
    CHECK(*flag);
}

static void on_msg(nwe_ws *ws, void *user, unsigned rsv, unsigned opcode, const uint8_t *msg,
                   size_t len, unsigned status) {
    struct seen *s = user;
    (void)rsv; (void)status;
    s->msgs++;
    s->last_len = len;
    if (s->release_in_msg) {
        nwe_release(ws);
        s->self = NULL;
        return;
    }
    if (s->reply_and_close) {
        CHECK(nwe_queue_msg(ws, opcode, msg, len) == NWE_OK);
        CHECK(nwe_close(ws, 1000, "bye", 3) == NWE_OK);
        s->reentrant_rc = nwe_queue_msg(ws, NWE_OP_TEXT, (const uint8_t *)"late", 4);
        CHECK(nwe_close(ws, 1000, NULL, 0) == NWE_ECLOSED);
    }
}

static void on_close(nwe_ws *ws, void *user, unsigned code) {
    struct seen *s = user;
    CHECK(ws == s->self);
    s->closes++;
    s->close_code = code;
}

static void on_wait(nwe_ws *ws, void *user, int closed, size_t unsent) {
    struct seen *s = user;
    (void)closed; (void)unsent;
    s->waits++;
    if (!ws) s->wait_null++;
}

static void on_done(void *user) {
    struct seen *s = user;
    s->dones++;
}

/* Produces one 100-byte piece, then fails. */
static int failing_producer(nwe_ws *ws, void *user, uint8_t *buf, size_t cap, size_t *len) {
    struct seen *s = user;
    (void)ws;
    if (s->produced++ == 0) {
        size_t n = cap < 100 ? cap : 100;
        memset(buf, 'x', n);
        *len = n;
        return NWE_FRAGMENT_DATA;
    }
    return NWE_FRAGMENT_ERROR;
}

/* Claims to have written more than it was given. */
static int lying_producer(nwe_ws *ws, void *user, uint8_t *buf, size_t cap, size_t *len) {
    (void)ws; (void)user; (void)buf;
    *len = cap + 1;
    return NWE_FRAGMENT_EOF;
}

/* Never ready. */
static int paused_producer(nwe_ws *ws, void *user, uint8_t *buf, size_t cap, size_t *len) {
    (void)ws; (void)user; (void)buf; (void)cap; (void)len;
    return NWE_FRAGMENT_PAUSE;
}

/* A server and a client connected to each other. */
static void pair(struct seen *server_seen, struct seen *client_seen, nwe_ws **server,
                 nwe_ws **client) {
    int fds[2];
    nwe_callbacks cbs = {0};
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    cbs.on_msg_recv = on_msg;
    cbs.on_close = on_close;
    cbs.user = server_seen;
    CHECK(nwe_server_new(loop, fds[0], NULL, &cbs, NULL, 0, server) == NWE_OK);
    server_seen->self = *server;
    cbs.user = client_seen;
    CHECK(nwe_client_new(loop, fds[1], NULL, &cbs, NULL, 0, client) == NWE_OK);
    client_seen->self = *client;
}

static void release_inside_a_callback(void) {
    struct seen ss = {0}, cs = {0};
    nwe_ws *server, *client;
    pair(&ss, &cs, &server, &client);
    ss.release_in_msg = 1;
    CHECK(nwe_queue_msg(client, NWE_OP_TEXT, (const uint8_t *)"hi", 2) == NWE_OK);
    CHECK(nwe_queue_msg(client, NWE_OP_TEXT, (const uint8_t *)"again", 5) == NWE_OK);
    run_until(&cs.closes, 1200);
    CHECK(ss.msgs == 1);      /* nothing after the release reached C */
    CHECK(ss.closes == 0);    /* not even on_close */
    CHECK(cs.close_code == 1006);
    nwe_release(client);
    puts("ok release_inside_a_callback");
}

static void calls_after_the_end(void) {
    struct seen ss = {0}, cs = {0};
    nwe_ws *server, *client;
    const char *reason;
    size_t len, count;
    pair(&ss, &cs, &server, &client);
    CHECK(nwe_close(client, 4000, "going", 5) == NWE_OK);
    run_until(&cs.closes, 1200);
    run_until(&ss.closes, 1200);
    CHECK(ss.close_code == 4000 && cs.close_code == 4000);
    CHECK(nwe_queue_msg(server, NWE_OP_TEXT, (const uint8_t *)"x", 1) == NWE_ECLOSED);
    CHECK(nwe_close(server, 1000, NULL, 0) == NWE_ECLOSED);
    CHECK(nwe_start(server) == NWE_ECLOSED && nwe_stop_read(server) == NWE_ECLOSED);
    CHECK(nwe_shutdown_write(server) == NWE_ECLOSED && nwe_abort(server) == NWE_ECLOSED);
    CHECK(nwe_wait(server, on_wait, &ss) == NWE_ECLOSED && ss.waits == 0);
    CHECK(nwe_queue_fragmented(server, NWE_OP_BINARY, failing_producer, on_done, &ss) == NWE_ECLOSED);
    CHECK(ss.dones == 0); /* on failure the caller keeps user */
    CHECK(nwe_queued_count(server, &count) == NWE_ECLOSED);
    CHECK(nwe_fd(server) == NWE_ECLOSED);
    CHECK(nwe_is_closed(server) == 1);
    CHECK(nwe_status_code_received(server) == 4000);
    CHECK(nwe_status_code_sent(server) == 4000);
    CHECK(nwe_close_reason_received(server, &reason, &len) == 1);
    CHECK(len == 5 && strcmp(reason, "going") == 0);
    CHECK(nwe_close_cause(server) == NWE_CAUSE_PEER_CLOSE);
    CHECK(nwe_close_cause(client) == NWE_CAUSE_LOCAL_CLOSE);
    CHECK(nwe_last_panic(server) == NULL);
    nwe_release(server);
    nwe_release(client);
    puts("ok calls_after_the_end");
}

static void producer_that_errors(void) {
    struct seen ss = {0}, cs = {0}, ps = {0};
    nwe_ws *server, *client;
    pair(&ss, &cs, &server, &client);
    CHECK(nwe_queue_fragmented(client, NWE_OP_BINARY, failing_producer, on_done, &ps) == NWE_OK);
    run_until(&ss.closes, 1200);
    run_until(&cs.closes, 1200);
    CHECK(ss.close_code == 1011);
    CHECK(nwe_close_cause(client) == NWE_CAUSE_PRODUCER_ERROR);
    CHECK(ps.produced == 2 && ps.dones == 1);
    nwe_release(server);
    nwe_release(client);

    memset(&ss, 0, sizeof ss); memset(&cs, 0, sizeof cs); memset(&ps, 0, sizeof ps);
    pair(&ss, &cs, &server, &client);
    CHECK(nwe_queue_fragmented(client, NWE_OP_BINARY, lying_producer, on_done, &ps) == NWE_OK);
    run_until(&ss.closes, 1200);
    CHECK(ss.close_code == 1011 && ss.msgs == 0);
    run_until(&ps.dones, 1200);
    CHECK(ps.dones == 1);
    nwe_release(server);
    nwe_release(client);
    puts("ok producer_that_errors");
}

static void reentrant_queue_and_close(void) {
    struct seen ss = {0}, cs = {0};
    nwe_ws *server, *client;
    pair(&ss, &cs, &server, &client);
    ss.reply_and_close = 1;
    CHECK(nwe_queue_msg(client, NWE_OP_BINARY, (const uint8_t *)"ping!", 5) == NWE_OK);
    CHECK(nwe_wait(client, on_wait, &cs) == NWE_OK);
    run_until(&cs.closes, 1200);
    run_until(&ss.closes, 1200);
    CHECK(ss.reentrant_rc == NWE_ECLOSED);
    CHECK(cs.msgs == 1 && cs.last_len == 5); /* the reply came before the close */
    CHECK(cs.close_code == 1000 && ss.close_code == 1000);
    CHECK(cs.waits == 1 && cs.wait_null == 0);
    nwe_release(server);
    nwe_release(client);
    puts("ok reentrant_queue_and_close");
}

static void release_while_open(void) {
    struct seen ss = {0}, cs = {0}, ps = {0};
    nwe_ws *server, *client;
    size_t count;
    pair(&ss, &cs, &server, &client);
    CHECK(nwe_stop_write(server) == NWE_OK);
    CHECK(nwe_queue_msg(server, NWE_OP_TEXT, (const uint8_t *)"held", 4) == NWE_OK);
    CHECK(nwe_queue_fragmented(server, NWE_OP_TEXT, paused_producer, on_done, &ps) == NWE_OK);
    CHECK(nwe_queued_count(server, &count) == NWE_OK && count == 2);
    CHECK(nwe_wait(server, on_wait, &ss) == NWE_OK);
    nwe_release(server); /* aborts: the wait and the producer are given back */
    run_until(&ss.waits, 1200);
    run_until(&ps.dones, 1200);
    CHECK(ss.wait_null == 1 && ss.closes == 0 && ps.dones == 1);
    run_until(&cs.closes, 1200);
    CHECK(cs.close_code == 1006);
    nwe_release(client);
    puts("ok release_while_open");
}

static void bad_arguments(void) {
    struct seen ss = {0}, cs = {0};
    nwe_ws *server, *client, *out = (nwe_ws *)&ss;
    nwe_params params;
    int fds[2];
    CHECK(nwe_queue_msg(NULL, NWE_OP_TEXT, NULL, 0) == NWE_EINVAL);
    nwe_release(NULL); /* ignored */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    /* A NULL loop fails, and the fd is closed all the same. */
    CHECK(nwe_server_new(NULL, fds[0], NULL, NULL, NULL, 0, &out) == NWE_EINVAL);
    CHECK(out == NULL);
    CHECK(fcntl(fds[0], F_GETFD) == -1 && errno == EBADF);
    /* Bad params fail the same way. */
    nwe_params_init(&params);
    CHECK(params.buffering == 1 && params.close_timeout == 10.0 && params.fragment_size == 4096);
    params.idle_timeout = -1;
    CHECK(nwe_client_new(loop, fds[1], &params, NULL, NULL, 0, &out) == NWE_EINVAL);
    CHECK(fcntl(fds[1], F_GETFD) == -1 && errno == EBADF);

    pair(&ss, &cs, &server, &client);
    CHECK(nwe_queue_msg(server, 3, (const uint8_t *)"x", 1) == NWE_EOPCODE);
    CHECK(nwe_queue_msg(server, NWE_OP_CLOSE, NULL, 0) == NWE_EOPCODE);
    CHECK(nwe_queue_msg(server, NWE_OP_TEXT, NULL, 3) == NWE_EINVAL);
    CHECK(nwe_queue_msg(server, NWE_OP_TEXT, (const uint8_t *)"\xff", 1) == NWE_EUTF8);
    {
        uint8_t big[126] = {0};
        CHECK(nwe_queue_msg(server, NWE_OP_PING, big, sizeof big) == NWE_ECONTROL_TOO_LONG);
    }
    CHECK(nwe_close(server, 1005, NULL, 0) == NWE_ECLOSE_CODE);
    CHECK(nwe_close(server, 70000, NULL, 0) == NWE_ECLOSE_CODE);
    CHECK(nwe_close(server, 0, "why", 3) == NWE_EREASON);
    CHECK(nwe_close(server, 1000, "\xff", 1) == NWE_EREASON);
    CHECK(nwe_queue_fragmented(server, NWE_OP_TEXT, NULL, on_done, &ss) == NWE_EINVAL);
    CHECK(nwe_resume_fragmented(server) == NWE_OK); /* nothing paused: nothing to do */
    CHECK(nwe_wait(server, NULL, NULL) == NWE_EINVAL);
    CHECK(nwe_queued_count(server, NULL) == NWE_EINVAL);
    CHECK(nwe_fd(server) >= 0);
    CHECK(nwe_close_cause(server) == NWE_CAUSE_OPEN);
    CHECK(strstr(nwe_strerror(NWE_ECLOSED), "closed") != NULL);
    CHECK(strcmp(nwe_strerror(12345), "unknown error code") == 0);
    CHECK(nwe_abort_all(loop) == 2); /* both on_close run inside */
    CHECK(ss.closes == 1 && cs.closes == 1);
    nwe_release(server);
    nwe_release(client);
    puts("ok bad_arguments");
}

static void handshakes(void) {
    static const char request[] =
        "GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n\x81";
    nwe_server_handshake *hs = nwe_server_handshake_new(0);
    nwe_client_handshake *ch;
    const uint8_t *data;
    size_t len, half = 20;
    CHECK(hs != NULL);
    CHECK(nwe_server_handshake_response(hs, NULL, &data, &len) == NWE_ESTATE);
    CHECK(nwe_server_handshake_feed(hs, (const uint8_t *)request, half) == 0);
    CHECK(nwe_server_handshake_path(hs) == NULL);
    CHECK(nwe_server_handshake_feed(hs, (const uint8_t *)request + half, sizeof request - 1 - half) == 1);
    CHECK(nwe_server_handshake_feed(hs, (const uint8_t *)"x", 1) == NWE_ESTATE);
    CHECK(strcmp(nwe_server_handshake_path(hs), "/chat?x=1") == 0);
    CHECK(strcmp(nwe_server_handshake_header(hs, "host"), "example.com") == 0);
    CHECK(nwe_server_handshake_header(hs, "x-absent") == NULL);
    CHECK(nwe_server_handshake_leftover(hs, &data, &len) == NWE_OK && len == 1 && data[0] == 0x81);
    CHECK(nwe_server_handshake_response(hs, "other", &data, &len) == NWE_EINVAL);
    CHECK(nwe_server_handshake_response(hs, "chat", &data, &len) == NWE_OK);
    CHECK(len > 12 && memcmp(data, "HTTP/1.1 101", 12) == 0);
    CHECK(strstr((const char *)data, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL);
    nwe_server_handshake_free(hs);

    hs = nwe_server_handshake_new(0);
    CHECK(nwe_server_handshake_feed(hs, (const uint8_t *)"POST / HTTP/1.1\r\n\r\n", 19) == NWE_EHANDSHAKE);
    CHECK(nwe_server_handshake_error(hs) != NULL);
    CHECK(nwe_server_handshake_response(hs, NULL, &data, &len) == NWE_OK);
    CHECK(len > 12 && memcmp(data, "HTTP/1.1 4", 10) == 0);
    CHECK(nwe_server_handshake_leftover(hs, &data, &len) == NWE_ESTATE);
    nwe_server_handshake_free(hs);

    /* The client's request, answered by a server handshake, checked by the client. */
    CHECK(nwe_client_handshake_new("http://x/", NULL, &ch) == NWE_EINVAL && ch == NULL);
    CHECK(nwe_client_handshake_new("wss://x/", NULL, &ch) == NWE_EINVAL);
    CHECK(nwe_client_handshake_new("ws://localhost:9001/feed", "chat, v2", &ch) == NWE_OK);
    CHECK(strcmp(nwe_client_handshake_host(ch), "localhost") == 0);
    CHECK(nwe_client_handshake_port(ch) == 9001);
    CHECK(nwe_client_handshake_request(ch, &data, &len) == NWE_OK);
    hs = nwe_server_handshake_new(0);
    CHECK(nwe_server_handshake_feed(hs, data, len) == 1);
    CHECK(strcmp(nwe_server_handshake_path(hs), "/feed") == 0);
    CHECK(nwe_server_handshake_response(hs, "v2", &data, &len) == NWE_OK);
    CHECK(nwe_client_handshake_leftover(ch, &data, &len) == NWE_ESTATE);
    CHECK(nwe_server_handshake_response(hs, "v2", &data, &len) == NWE_OK);
    CHECK(nwe_client_handshake_feed(ch, data, len) == 1);
    CHECK(strcmp(nwe_client_handshake_protocol(ch), "v2") == 0);
    CHECK(nwe_client_handshake_leftover(ch, &data, &len) == NWE_OK && len == 0);
    nwe_server_handshake_free(hs);
    nwe_client_handshake_free(ch);

    /* A response for another key fails. */
    CHECK(nwe_client_handshake_new("ws://localhost/", NULL, &ch) == NWE_OK);
    {
        static const char bad[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
        CHECK(nwe_client_handshake_feed(ch, (const uint8_t *)bad, sizeof bad - 1) == NWE_EHANDSHAKE);
    }
    CHECK(nwe_client_handshake_error(ch) != NULL);
    nwe_client_handshake_free(ch);
    puts("ok handshakes");
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    loop = ev_loop_new(0);
    release_inside_a_callback();
    calls_after_the_end();
    producer_that_errors();
    reentrant_queue_and_close();
    release_while_open();
    bad_arguments();
    handshakes();
    CHECK(nwe_abort_all(loop) == 0);
    {
        char text[128];
        CHECK(nwe_take_panic(text, sizeof text) == 0);
    }
    ev_loop_destroy(loop);
    puts("all ok");
    return 0;
}
