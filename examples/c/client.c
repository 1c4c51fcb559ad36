/*
 * A WebSocket client in C99 on libev, with net-websocket-ev's C API.
 *
 *   client URL [MESSAGE...]
 *
 * Connects to URL (ws://host[:port][/path]), sends each MESSAGE as text (or reads
 * lines from stdin when there is none), prints every message received on its own
 * line, then closes with 1000 once as many messages came back as it sent. Exits 0
 * when the closing handshake completed.
 *
 * Build: cc -std=c99 client.c -I src/capi libnet_websocket_ev.a -lev -lpthread -ldl -lm
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "net_websocket_ev.h"

struct session {
    size_t sent, received;
    unsigned close_code;
    int closed;
};

static void on_msg(nwe_ws *ws, void *user, unsigned rsv, unsigned opcode,
                   const uint8_t *msg, size_t len, unsigned status) {
    struct session *s = user;
    (void)rsv; (void)status;
    if (opcode != NWE_OP_TEXT && opcode != NWE_OP_BINARY) return;
    fwrite(msg, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (++s->received == s->sent) nwe_close(ws, 1000, "done", 4);
}

static void on_close(nwe_ws *ws, void *user, unsigned code) {
    struct session *s = user;
    (void)ws;
    s->close_code = code;
    s->closed = 1;
}

/* Connects to host:port (blocking). */
static int connect_to(const char *host, int port) {
    struct addrinfo hints, *res, *ai;
    char service[16];
    int fd = -1;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0) return -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* The opening handshake, blocking: request out, response in. Returns 0 and leaves
 * hs complete (its leftover is the start of the WebSocket stream), or -1. */
static int handshake(int fd, nwe_client_handshake *hs) {
    const uint8_t *req;
    size_t req_len, off = 0;
    uint8_t buf[4096];
    int rc = 0;
    nwe_client_handshake_request(hs, &req, &req_len);
    while (off < req_len) {
        ssize_t n = write(fd, req + off, req_len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        off += (size_t)n;
    }
    while (rc == 0) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        rc = nwe_client_handshake_feed(hs, buf, (size_t)n);
    }
    if (rc < 0) {
        fprintf(stderr, "client: handshake: %s\n", nwe_client_handshake_error(hs));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct ev_loop *loop;
    struct session s = {0, 0, 0, 0};
    nwe_client_handshake *hs;
    nwe_callbacks cbs = {0};
    nwe_ws *ws;
    const uint8_t *leftover;
    size_t leftover_len;
    char line[65536];
    int fd, rc, i;
    if (argc < 2) {
        fprintf(stderr, "usage: %s ws://host[:port]/path [MESSAGE...]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    rc = nwe_client_handshake_new(argv[1], NULL, &hs);
    if (rc < 0) {
        fprintf(stderr, "client: %s: %s\n", argv[1], nwe_strerror(rc));
        return 2;
    }
    fd = connect_to(nwe_client_handshake_host(hs), nwe_client_handshake_port(hs));
    if (fd < 0 || handshake(fd, hs) < 0) {
        fprintf(stderr, "client: cannot connect to %s\n", argv[1]);
        if (fd >= 0) close(fd);
        nwe_client_handshake_free(hs);
        return 1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    nwe_client_handshake_leftover(hs, &leftover, &leftover_len);

    loop = ev_loop_new(0);
    cbs.user = &s;
    cbs.on_msg_recv = on_msg;
    cbs.on_close = on_close;
    rc = nwe_client_new(loop, fd, NULL, &cbs, leftover, leftover_len, &ws);
    nwe_client_handshake_free(hs); /* the leftover was copied */
    if (rc < 0) {
        fprintf(stderr, "client: %s\n", nwe_strerror(rc));
        ev_loop_destroy(loop);
        return 1;
    }
    if (argc > 2) {
        for (i = 2; i < argc; i++, s.sent++)
            nwe_queue_msg(ws, NWE_OP_TEXT, (const uint8_t *)argv[i], strlen(argv[i]));
    } else {
        while (fgets(line, sizeof line, stdin)) {
            size_t len = strcspn(line, "\n");
            nwe_queue_msg(ws, NWE_OP_TEXT, (const uint8_t *)line, len);
            s.sent++;
        }
    }
    if (s.sent == 0) nwe_close(ws, 1000, "done", 4);
    ev_run(loop, 0); /* returns when the connection has ended */

    rc = s.closed && s.close_code == 1000 && nwe_close_cause(ws) == NWE_CAUSE_LOCAL_CLOSE;
    if (!rc)
        fprintf(stderr, "client: ended with %u (%s)\n", s.close_code,
                nwe_close_cause_name(nwe_close_cause(ws)));
    nwe_release(ws);
    nwe_abort_all(loop);
    ev_loop_destroy(loop);
    return rc ? 0 : 1;
}
