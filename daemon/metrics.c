// SPDX-License-Identifier: MIT
/*
 * metrics.c - the optional HTTP endpoint for Prometheus
 * (--metrics-listen ADDR:PORT): plain HTTP/1.1, GET or HEAD /metrics, one
 * request per connection, answered and closed. Bounded like the control
 * socket: at most LF_METRICS_MAX_CLIENTS at once, a request of at most
 * 4 KiB, 5 s to send it and read the answer; nothing blocks the loop.
 * What it serves comes from the daemon through a render callback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "loopfastd.h"

#define REQ_MAX 4096
#define CLIENT_TIMEOUT_NS (5ULL * 1000000000ULL)

struct mclient {
	struct lf_metrics *m;
	int slot;
	int fd;
	__u64 start_ns;
	char req[REQ_MAX];
	size_t req_len;
	char *out; /* the whole answer, once the request is complete */
	size_t out_len, out_off;
};

struct lf_metrics {
	int fd;
	lf_metrics_render_fn render;
	void *ctx;
	struct mclient *c[LF_METRICS_MAX_CLIENTS];
};

/* "ADDR:PORT", "[ADDR6]:PORT" or ":PORT" (all addresses) into sa. */
static int addr_parse(const char *s, struct sockaddr_in6 *sa)
{
	char host[INET6_ADDRSTRLEN + 8] = "";
	const char *colon = strrchr(s, ':');
	struct in_addr a4;
	char *end;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, colon - s);
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 1 || port > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin6_family = AF_INET6;
	sa->sin6_port = htons((__u16)port);
	if (!host[0])
		sa->sin6_addr = in6addr_any;
	else if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &sa->sin6_addr) != 1)
			return -EINVAL;
	} else if (inet_pton(AF_INET, host, &a4) == 1) {
		sa->sin6_addr.s6_addr[10] = 0xff;
		sa->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&sa->sin6_addr.s6_addr[12], &a4, 4);
	} else {
		return -EINVAL;
	}
	return 0;
}

int lf_metrics_addr_ok(const char *s)
{
	struct sockaddr_in6 sa;

	return addr_parse(s, &sa) == 0;
}

static int listen_on(const char *where)
{
	struct sockaddr_in6 sa;
	int fd, zero = 0, one = 1, err;

	err = addr_parse(where, &sa);
	if (err) {
		pr_err("--metrics-listen %s: not ADDR:PORT ([ADDR]:PORT for IPv6, :PORT for every address)",
		       where);
		return err;
	}
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		pr_err("--metrics-listen %s: socket: %s", where,
		       strerror(-err));
		return err;
	}
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16)) {
		err = -errno;
		pr_err("--metrics-listen %s: %s%s", where, strerror(-err),
		       err == -EADDRINUSE ?
			       " (another program has that port: pick another)" :
			       "");
		close(fd);
		return err;
	}
	return fd;
}

struct lf_metrics *lf_metrics_open(const char *where,
				   lf_metrics_render_fn render, void *ctx)
{
	struct lf_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->fd = listen_on(where);
	if (m->fd < 0) {
		free(m);
		return NULL;
	}
	m->render = render;
	m->ctx = ctx;
	pr_info("metrics: http://%s/metrics", where);
	return m;
}

static void client_close(struct mclient *c)
{
	c->m->c[c->slot] = NULL;
	close(c->fd);
	free(c->out);
	free(c);
}

void lf_metrics_close(struct lf_metrics *m)
{
	int i;

	if (!m)
		return;
	for (i = 0; i < LF_METRICS_MAX_CLIENTS; i++)
		if (m->c[i])
			client_close(m->c[i]);
	close(m->fd);
	free(m);
}

static void accept_all(struct lf_metrics *m)
{
	struct mclient *c;
	int fd, i;

	while ((fd = accept4(m->fd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		for (i = 0; i < LF_METRICS_MAX_CLIENTS && m->c[i]; i++)
			;
		c = i < LF_METRICS_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			close(fd); /* busy: the scraper tries again */
			continue;
		}
		c->m = m;
		c->slot = i;
		c->fd = fd;
		c->start_ns = lf_now_ns();
		m->c[i] = c;
	}
}

/* The answer to one request line: status, and the body for a 200. */
static int respond(struct mclient *c, const char *status, const char *body,
		   size_t body_len, int head)
{
	FILE *f = open_memstream(&c->out, &c->out_len);

	if (!f)
		return -ENOMEM;
	fprintf(f,
		"HTTP/1.1 %s\r\n"
		"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
		"Content-Length: %zu\r\n"
		"Connection: close\r\n",
		status, body_len);
	if (!strncmp(status, "405", 3))
		fputs("Allow: GET, HEAD\r\n", f);
	fputs("\r\n", f);
	if (!head)
		fwrite(body, 1, body_len, f);
	return fclose(f) ? -ENOMEM : 0;
}

static int serve_metrics(struct mclient *c, int head)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	int err;

	if (!f)
		return -ENOMEM;
	err = c->m->render(c->m->ctx, f);
	if (fclose(f) && !err)
		err = -ENOMEM;
	if (err)
		err = respond(c, "500 Internal Server Error", "", 0, head);
	else
		err = respond(c, "200 OK", body, len, head);
	free(body);
	return err;
}

/* A whole request head is in: answer it (only its first line matters). */
static int answer(struct mclient *c)
{
	char method[8], target[64], version[16];
	static const char nf[] = "not found: try /metrics\n";
	int head;

	c->req[c->req_len] = '\0';
	if (sscanf(c->req, "%7s %63s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7))
		return respond(c, "400 Bad Request", "", 0, 0);
	head = !strcmp(method, "HEAD");
	if (!head && strcmp(method, "GET"))
		return respond(c, "405 Method Not Allowed", "", 0, 0);
	if (strcmp(target, "/metrics"))
		return respond(c, "404 Not Found", nf, sizeof(nf) - 1, head);
	return serve_metrics(c, head);
}

static int client_read(struct mclient *c)
{
	ssize_t n;

	n = recv(c->fd, c->req + c->req_len, REQ_MAX - 1 - c->req_len, 0);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (!n)
		return -ECONNRESET;
	c->req_len += n;
	c->req[c->req_len] = '\0';
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
		return answer(c);
	if (c->req_len >= REQ_MAX - 1)
		return respond(c, "431 Request Header Fields Too Large", "", 0,
			       0);
	return 0;
}

/* 1 once the whole answer is out. */
static int client_write(struct mclient *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		c->out_off += n;
	}
	return 1;
}

static void client_event(void *ctx, short ev)
{
	struct mclient *c = ctx;
	int err = 0;

	if (!c->out && (ev & (POLLIN | POLLHUP | POLLERR)))
		err = client_read(c);
	if (!err && c->out)
		err = client_write(c);
	if (err || lf_now_ns() - c->start_ns > CLIENT_TIMEOUT_NS)
		client_close(c);
}

static void listen_event(void *ctx, short ev)
{
	if (ev)
		accept_all(ctx);
}

void lf_metrics_prepare(struct lf_metrics *m, struct lf_loop *l)
{
	struct mclient *c;
	int i;

	if (!m)
		return;
	lf_loop_add(l, m->fd, POLLIN, listen_event, m);
	for (i = 0; i < LF_METRICS_MAX_CLIENTS; i++) {
		c = m->c[i];
		if (!c)
			continue;
		if (!lf_loop_add(l, c->fd, c->out ? POLLOUT : POLLIN,
				 client_event, c))
			lf_loop_wake_in(l, 1000);
	}
}
