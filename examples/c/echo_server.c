/*
 * A WebSocket echo server in C99 on libev, with net-websocket-ev's C API.
 *
 *   echo_server [--port PORT] [--max-connections N] [--commands] [--close-timeout SECS]
 *
 * Listens on 127.0.0.1:PORT (0, the default, picks a free port), prints
 * "listening on 127.0.0.1:PORT" and echoes every text and binary message. With
 * --max-connections (-n) it exits once that many connections have ended; SIGINT and
 * SIGTERM end it too, freeing everything (for valgrind). --commands makes a text
 * message "!close CODE REASON" close the connection from the server (what the
 * interop peers expect of the Rust example); --close-timeout sets the close timeout.
 *
 * Build: cc -std=c99 echo_server.c -I src/capi libnet_websocket_ev.a -lev -lpthread -ldl -lm
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "net_websocket_ev.h"

/* A connection still in its opening handshake. */
struct pending {
    ev_io io;
    int fd;
    nwe_server_handshake *hs;
    struct pending *next, *prev;
};

static struct pending *pending_list;
static long ended, max_connections = -1;
static int commands;
static nwe_params params;
static ev_io listener;

static void unlink_pending(struct pending *p) {
    if (p->prev) p->prev->next = p->next; else pending_list = p->next;
    if (p->next) p->next->prev = p->prev;
}

static void drop_pending(struct ev_loop *loop, struct pending *p, int close_fd) {
    ev_io_stop(loop, &p->io);
    unlink_pending(p);
    if (close_fd) close(p->fd);
    nwe_server_handshake_free(p->hs);
    free(p);
}

static void on_msg(nwe_ws *ws, void *user, unsigned rsv, unsigned opcode,
                   const uint8_t *msg, size_t len, unsigned status) {
    (void)user; (void)rsv; (void)status;
    if (commands && opcode == NWE_OP_TEXT && len >= 7 && memcmp(msg, "!close ", 7) == 0) {
        /* "!close CODE REASON": CODE digits, then the reason after one space. */
        unsigned code = 0;
        size_t i = 7;
        while (i < len && msg[i] >= '0' && msg[i] <= '9' && code < 100000)
            code = code * 10 + (unsigned)(msg[i++] - '0');
        if (i < len && msg[i] == ' ') i++;
        int rc = nwe_close(ws, code, (const char *)msg + i, len - i);
        if (rc < 0) fprintf(stderr, "echo_server: close: %s\n", nwe_strerror(rc));
        return;
    }
    if (opcode == NWE_OP_TEXT || opcode == NWE_OP_BINARY) {
        int rc = nwe_queue_msg(ws, opcode, msg, len);
        if (rc < 0 && rc != NWE_ECLOSED) {
            fprintf(stderr, "echo_server: queue: %s\n", nwe_strerror(rc));
            nwe_close(ws, 1011, NULL, 0);
        }
    }
}

static void on_close(nwe_ws *ws, void *user, unsigned code) {
    struct ev_loop *loop = user;
    (void)code;
    nwe_release(ws); /* safe inside its own callback */
    ended++;
    if (max_connections >= 0 && ended >= max_connections) {
        ev_io_stop(loop, &listener);
        ev_break(loop, EVBREAK_ALL);
    }
}

/* Writes the whole buffer to a non-blocking socket (a handshake response is small:
 * a fresh socket's buffer takes it at once). */
static int write_all(int fd, const uint8_t *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void on_handshake_readable(struct ev_loop *loop, ev_io *w, int revents) {
    struct pending *p = (struct pending *)w;
    uint8_t buf[4096];
    const uint8_t *out, *leftover;
    size_t out_len, leftover_len;
    ssize_t n;
    int rc;
    (void)revents;
    n = read(p->fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { drop_pending(loop, p, 1); return; }
    rc = nwe_server_handshake_feed(p->hs, buf, (size_t)n);
    if (rc == 0) return; /* more to come */
    if (nwe_server_handshake_response(p->hs, NULL, &out, &out_len) < 0
        || write_all(p->fd, out, out_len) < 0 || rc < 0) {
        if (rc < 0) fprintf(stderr, "echo_server: handshake: %s\n", nwe_server_handshake_error(p->hs));
        drop_pending(loop, p, 1);
        return;
    }
    nwe_server_handshake_leftover(p->hs, &leftover, &leftover_len);
    {
        nwe_callbacks cbs = {0};
        nwe_ws *ws;
        int fd = p->fd;
        cbs.user = loop;
        cbs.on_msg_recv = on_msg;
        cbs.on_close = on_close;
        ev_io_stop(loop, &p->io);
        /* The fd is the connection's from here, whatever the result. */
        rc = nwe_server_new(loop, fd, &params, &cbs, leftover, leftover_len, &ws);
        drop_pending(loop, p, 0);
        if (rc < 0) fprintf(stderr, "echo_server: %s\n", nwe_strerror(rc));
    }
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
    int one = 1, fd;
    struct pending *p;
    (void)revents;
    fd = accept(w->fd, NULL, NULL);
    if (fd < 0) return;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    p = calloc(1, sizeof *p);
    if (!p) { close(fd); return; }
    p->fd = fd;
    p->hs = nwe_server_handshake_new(0);
    if (!p->hs) { close(fd); free(p); return; }
    p->next = pending_list;
    if (pending_list) pending_list->prev = p;
    pending_list = p;
    ev_io_init(&p->io, on_handshake_readable, fd, EV_READ);
    ev_io_start(loop, &p->io);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void)w; (void)revents;
    ev_io_stop(loop, &listener);
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv) {
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    ev_signal sigint, sigterm;
    int port = 0, fd, one = 1, i;
    nwe_params_init(&params);
    for (i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if ((!strcmp(argv[i], "-p") || !strcmp(argv[i], "--port")) && more)
            port = atoi(argv[++i]);
        else if ((!strcmp(argv[i], "-n") || !strcmp(argv[i], "--max-connections")) && more)
            max_connections = atol(argv[++i]);
        else if (!strcmp(argv[i], "--close-timeout") && more)
            params.close_timeout = atof(argv[++i]);
        else if (!strcmp(argv[i], "--commands"))
            commands = 1;
        else {
            fprintf(stderr, "usage: %s [--port PORT] [--max-connections N] [--commands] "
                            "[--close-timeout SECS]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 128) < 0
        || getsockname(fd, (struct sockaddr *)&addr, &addr_len) < 0) {
        perror("echo_server: listen");
        return 1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    ev_io_init(&listener, on_accept, fd, EV_READ);
    ev_io_start(loop, &listener);
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);
    ev_unref(loop); /* the signal watchers alone do not keep the loop running */
    ev_unref(loop);
    ev_run(loop, 0);
    ev_ref(loop);
    ev_ref(loop);
    ev_signal_stop(loop, &sigint);
    ev_signal_stop(loop, &sigterm);

    /* Teardown: pending handshakes, then every open connection (their on_close
     * releases them), then the loop. */
    while (pending_list) drop_pending(loop, pending_list, 1);
    nwe_abort_all(loop);
    close(fd);
    {
        char text[256];
        if (nwe_take_panic(text, sizeof text)) {
            fprintf(stderr, "echo_server: library panic: %s\n", text);
            return 1;
        }
    }
    ev_loop_destroy(loop);
    return 0;
}
