/* The wslay side of the engine benchmarks: the same byte streams through
 * libwslay's event API (parse + deliver, serialise) and its frame API (masking).
 * Input comes from memory, output goes nowhere: no syscalls are measured. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <wslay/wslay.h>

struct cursor {
  const uint8_t *data;
  size_t len, pos;
  uint64_t msgs, bytes;
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user_data) {
  struct cursor *c = user_data;
  (void)flags;
  size_t n = c->len - c->pos;
  if (n == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (n > len) n = len;
  memcpy(buf, c->data + c->pos, n);
  c->pos += n;
  return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user_data) {
  struct cursor *c = user_data;
  (void)ctx; (void)flags;
  c->bytes += len;
  if (len) c->msgs ^= data[0]; /* touch the bytes so nothing is elided */
  return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *user_data) {
  (void)ctx; (void)user_data;
  memset(buf, 0x5a, len);
  return 0;
}

static void on_msg_cb(wslay_event_context_ptr ctx,
                      const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data) {
  struct cursor *c = user_data;
  (void)ctx;
  c->msgs += 1;
  c->bytes += arg->msg_length;
}

static const struct wslay_event_callbacks callbacks = {
    recv_cb, send_cb, genmask_cb, NULL, NULL, NULL, on_msg_cb};

struct bench {
  wslay_event_context_ptr ctx;
  struct cursor c;
};

/* A context for the server (server != 0) or the client role. */
void *wslay_bench_new(int server) {
  struct bench *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  int rv = server ? wslay_event_context_server_init(&b->ctx, &callbacks, &b->c)
                  : wslay_event_context_client_init(&b->ctx, &callbacks, &b->c);
  if (rv != 0) {
    free(b);
    return NULL;
  }
  return b;
}

void wslay_bench_free(void *p) {
  struct bench *b = p;
  wslay_event_context_free(b->ctx);
  free(b);
}

/* Parses and delivers every message of `data`; returns the messages seen, or
 * UINT64_MAX on a wslay error. */
uint64_t wslay_bench_recv(void *p, const uint8_t *data, size_t len,
                          uint64_t *bytes) {
  struct bench *b = p;
  b->c = (struct cursor){data, len, 0, 0, 0};
  if (wslay_event_recv(b->ctx) != 0) return UINT64_MAX;
  *bytes = b->c.bytes;
  return b->c.msgs;
}

/* Queues `count` binary messages of `payload` and writes them all out; returns
 * the bytes written. */
uint64_t wslay_bench_send(void *p, const uint8_t *payload, size_t len,
                          size_t count) {
  struct bench *b = p;
  b->c = (struct cursor){NULL, 0, 0, 0, 0};
  for (size_t i = 0; i < count; i++) {
    struct wslay_event_msg msg = {WSLAY_BINARY_FRAME, payload, len};
    if (wslay_event_queue_msg(b->ctx, &msg) != 0) return UINT64_MAX;
  }
  if (wslay_event_send(b->ctx) != 0) return UINT64_MAX;
  return b->c.bytes;
}

/* The frame API: reads one masked frame of `data` and unmasks its payload
 * (wslay's unmasking loop, plus its header parse and chunked copy). */
static ssize_t frame_recv_cb(uint8_t *buf, size_t len, int flags,
                             void *user_data) {
  struct cursor *c = user_data;
  (void)flags;
  size_t n = c->len - c->pos;
  if (n == 0) return -1;
  if (n > len) n = len;
  memcpy(buf, c->data + c->pos, n);
  c->pos += n;
  return (ssize_t)n;
}

uint64_t wslay_bench_unmask(const uint8_t *data, size_t len) {
  struct cursor c = {data, len, 0, 0, 0};
  struct wslay_frame_callbacks cbs = {NULL, frame_recv_cb, NULL};
  wslay_frame_context_ptr fctx;
  if (wslay_frame_context_init(&fctx, &cbs, &c) != 0) return UINT64_MAX;
  uint64_t total = 0, sum = 0;
  for (;;) {
    struct wslay_frame_iocb iocb;
    ssize_t r = wslay_frame_recv(fctx, &iocb);
    if (r < 0) break;
    total += iocb.data_length;
    if (iocb.data_length) sum += iocb.data[iocb.data_length - 1];
    if (total >= iocb.payload_length) break;
  }
  wslay_frame_context_free(fctx);
  return total + (sum & 1) * 0;
}
