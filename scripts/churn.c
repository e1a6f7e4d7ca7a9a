/*
 * churn.c - tiny load generator and upstream server for scripts/bench.
 *
 * Build:  gcc -O2 -pthread -o churn churn.c
 *
 * Server (single-threaded epoll, binds 127.0.0.1 only):
 *   churn server PORT close|hold [MAX_SECONDS]
 *     close: for every connection, read one request, answer "+PONG\r\n",
 *            then close (the server closes first, so TIME_WAIT lands on
 *            the accepting side and never pins a client ephemeral port).
 *     hold:  answer "+PONG\r\n" to every read and keep the connection
 *            open until the peer closes it (used for idle-connection RSS).
 *     Exits on SIGTERM/SIGINT or after MAX_SECONDS (default 7200).
 *     Prints "ready PORT" on stdout once listening.
 *
 * Client (N blocking threads):
 *   churn client PORT THREADS SECONDS MAX_CONNS [eof|close] [SRC_SPREAD]
 *     Each thread loops: connect to 127.0.0.1:PORT, send "PING\r\n",
 *     read "+PONG\r\n", then either wait for the server's EOF and close
 *     (eof, default) or close right away (close). Stops after SECONDS or
 *     MAX_CONNS connections in total, whichever comes first.
 *     SRC_SPREAD > 1 binds each connection to a source address in
 *     127.0.0.1 .. 127.0.0.SRC_SPREAD (IP_BIND_ADDRESS_NO_PORT), which
 *     multiplies the ephemeral port space when the client closes first.
 *     Prints one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static const char REQ[] = "PING\r\n";
static const char REP[] = "+PONG\r\n";
#define REQ_LEN (sizeof(REQ) - 1)
#define REP_LEN (sizeof(REP) - 1)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ server */

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static int run_server(int port, int hold, double max_seconds) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) { perror("socket"); return 1; }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    if (listen(lfd, 4096) < 0) { perror("listen"); return 1; }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) { perror("epoll_create1"); return 1; }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

    printf("ready %d\n", port);
    fflush(stdout);

    double deadline = now_s() + max_seconds;
    struct epoll_event evs[256];
    char buf[4096];
    while (!g_stop && now_s() < deadline) {
        int n = epoll_wait(ep, evs, 256, 200);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (int k = 0; k < 1024; k++) { /* bounded accept burst */
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev;
                    memset(&cev, 0, sizeof cev);
                    cev.events = EPOLLIN | EPOLLRDHUP;
                    cev.data.fd = cfd;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev) < 0) close(cfd);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r > 0) {
                ssize_t w = write(fd, REP, REP_LEN);
                (void)w;
                if (!hold) close(fd); /* server closes first */
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(fd);
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ client */

#define HIST_US_BUCKETS 200000 /* 1 us resolution up to 200 ms */

struct client_cfg {
    int port;
    double deadline;
    long max_conns;
    int wait_eof;
    int src_spread;
};

struct worker {
    pthread_t th;
    int idx;
    const struct client_cfg *cfg;
    long ok;
    long err_connect;
    long err_io;
    long err_addr;
    uint32_t *hist; /* latency per connection, us */
    long hist_over;
};

static atomic_long g_started;

static int read_full(int fd, char *buf, size_t want) {
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r > 0) { got += (size_t)r; continue; }
        if (r < 0 && errno == EINTR) continue;
        return -1;
    }
    return 0;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    const struct client_cfg *c = w->cfg;
    struct sockaddr_in dst;
    memset(&dst, 0, sizeof dst);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)c->port);
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    int one = 1;
    unsigned seq = (unsigned)w->idx;
    char buf[64];

    while (now_s() < c->deadline) {
        if (atomic_fetch_add(&g_started, 1) >= c->max_conns) break;
        double t0 = now_s();
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) { w->err_connect++; usleep(1000); continue; }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (c->src_spread > 1) {
            struct sockaddr_in src;
            memset(&src, 0, sizeof src);
            src.sin_family = AF_INET;
            src.sin_addr.s_addr = htonl(0x7f000001u + (seq++ % (unsigned)c->src_spread));
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
                w->err_addr++; close(fd); usleep(1000); continue;
            }
        }
        if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
            if (errno == EADDRNOTAVAIL) w->err_addr++; else w->err_connect++;
            close(fd);
            usleep(1000);
            continue;
        }
        if (write(fd, REQ, REQ_LEN) != (ssize_t)REQ_LEN ||
            read_full(fd, buf, REP_LEN) < 0 || memcmp(buf, REP, REP_LEN) != 0) {
            w->err_io++;
            close(fd);
            continue;
        }
        if (c->wait_eof) {
            ssize_t r;
            int bounded = 0;
            do { r = read(fd, buf, sizeof buf); } while ((r > 0 || (r < 0 && errno == EINTR)) && ++bounded < 64);
            if (r != 0) { w->err_io++; close(fd); continue; }
        }
        close(fd);
        w->ok++;
        long us = (long)((now_s() - t0) * 1e6);
        if (us < 0) us = 0;
        if (us < HIST_US_BUCKETS) w->hist[us]++; else w->hist_over++;
    }
    return NULL;
}

static double hist_pct(const uint64_t *h, long over, long total, double p) {
    if (total <= 0) return 0.0;
    long want = (long)(p * (double)total);
    if (want >= total) want = total - 1;
    long acc = 0;
    for (long i = 0; i < HIST_US_BUCKETS; i++) {
        acc += (long)h[i];
        if (acc > want) return (double)i / 1000.0;
    }
    (void)over;
    return (double)HIST_US_BUCKETS / 1000.0;
}

static int run_client(int port, int threads, double seconds, long max_conns, int wait_eof, int spread) {
    signal(SIGPIPE, SIG_IGN);
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    struct client_cfg cfg = {port, 0.0, max_conns, wait_eof, spread};
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    if (!ws) return 1;
    atomic_store(&g_started, 0);
    double t0 = now_s();
    cfg.deadline = t0 + seconds;
    for (int i = 0; i < threads; i++) {
        ws[i].idx = i;
        ws[i].cfg = &cfg;
        ws[i].hist = calloc(HIST_US_BUCKETS, sizeof(uint32_t));
        if (!ws[i].hist) return 1;
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) { perror("pthread_create"); return 1; }
    }
    for (int i = 0; i < threads; i++) pthread_join(ws[i].th, NULL);
    double elapsed = now_s() - t0;

    long ok = 0, ec = 0, ei = 0, ea = 0, over = 0;
    uint64_t *h = calloc(HIST_US_BUCKETS, sizeof(uint64_t));
    if (!h) return 1;
    for (int i = 0; i < threads; i++) {
        ok += ws[i].ok; ec += ws[i].err_connect; ei += ws[i].err_io; ea += ws[i].err_addr;
        over += ws[i].hist_over;
        for (long b = 0; b < HIST_US_BUCKETS; b++) h[b] += ws[i].hist[b];
        free(ws[i].hist);
    }
    printf("{\"conns\": %ld, \"seconds\": %.4f, \"cps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"err_connect\": %ld, \"err_io\": %ld, \"err_addrnotavail\": %ld, \"over_200ms\": %ld, "
           "\"threads\": %d}\n",
           ok, elapsed, elapsed > 0 ? (double)ok / elapsed : 0.0,
           hist_pct(h, over, ok, 0.50), hist_pct(h, over, ok, 0.99), ec, ei, ea, over, threads);
    free(h);
    free(ws);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "server") == 0) {
        int hold = strcmp(argv[3], "hold") == 0;
        double maxs = argc >= 5 ? atof(argv[4]) : 7200.0;
        return run_server(atoi(argv[2]), hold, maxs);
    }
    if (argc >= 6 && strcmp(argv[1], "client") == 0) {
        int wait_eof = !(argc >= 7 && strcmp(argv[6], "close") == 0);
        int spread = argc >= 8 ? atoi(argv[7]) : 1;
        if (spread > 250) spread = 250;
        double secs = atof(argv[4]);
        if (secs > 600) secs = 600;
        return run_client(atoi(argv[2]), atoi(argv[3]), secs, atol(argv[5]), wait_eof, spread);
    }
    fprintf(stderr,
            "usage: %s server PORT close|hold [MAX_SECONDS]\n"
            "       %s client PORT THREADS SECONDS MAX_CONNS [eof|close] [SRC_SPREAD]\n",
            argv[0], argv[0]);
    return 2;
}
