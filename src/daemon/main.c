/*
 * meterkeyd: the key management and verification service
 * (docs/internals/service.md, docs/api.md). Serves HTTPS with mutual TLS
 * over one home's KMS: its boxes (in this process, or as processes with
 * --boxes), its archive. Runs until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "daemon.h"

static const char usage[] =
	"usage: meterkeyd --home DIR --cert FILE --key FILE [options]\n"
	"  Serves the home's KMS over HTTPS with mutual TLS (docs/api.md). The\n"
	"  server's certificate and key: `meterkey service cert --role server`.\n"
	"  A client presents a certificate of a client's role from the same\n"
	"  provider CA (HOME/trust/root.pem); without one, with an expired one or\n"
	"  one of another CA, the handshake fails. Logs on standard error, one\n"
	"  JSON object a line ({\"time\",\"level\",\"msg\",...}): \"listening\" with\n"
	"  its \"url\" (https://HOST:PORT) once it serves, each request answered\n"
	"  (method, path, status, client), \"stopped\"; stops on SIGTERM or SIGINT.\n"
	"options:\n"
	"  --home DIR        the home (default: $METERKEY_HOME)\n"
	"  --archive URL     the archive (default: sqlite:HOME/archive.db)\n"
	"  --shares DIR      the operators' share files (default: HOME/shares)\n"
	"  --boxes DIR       each box a process of its own at DIR/<ID>.sock\n"
	"  --cert FILE       the server's certificate (PEM)\n"
	"  --key FILE        the server's private key (PEM)\n"
	"  --listen HOST     the address to serve on (default 127.0.0.1)\n"
	"  --port N          the TCP port (default 8443; 0: any free one)\n"
	"  --max-body N      bytes of a request body (default 1048576); a larger\n"
	"                    one is refused before it is read (413)\n"
	"  --max-items N     indicia of a verification batch (default 1000)\n"
	"  --timeout S       seconds for the TLS handshake and a request to arrive\n"
	"                    whole (else 408 and closed), for an answer to be\n"
	"                    taken, for an idle connection to stay (default 30)\n"
	"  --max-connections N  connections served at once (default 256); one more\n"
	"                    is answered 503 with Retry-After and closed; at twice\n"
	"                    N the service stops accepting until one closes\n"
	"  --rate N          requests a second per client certificate (default 200;\n"
	"                    0: no limit); over it: 429 with Retry-After\n"
	"  --burst N         requests a client may make at once (default: --rate)\n"
	"  --audit FILE      the audit log (default HOME/service-audit.log, 0600):\n"
	"                    each verification batch is a JSON line there, on disk\n"
	"                    before it acts and its outcome before it is answered;\n"
	"                    a line that cannot be written refuses the call (503,\n"
	"                    MK_ERR_SVC_AUDIT)\n"
	"  --audit-timeout MS  how long a write of it may take (default 2000)\n"
	"  --cache-idle MS   how long the verifier, with its open boxes and its\n"
	"                    caches, is kept after a batch (default 1000; 0: a\n"
	"                    verifier per batch); boxes in this process are\n"
	"                    another process's (the CLI's) only once it is let go\n"
	"  --routes          print the calls (METHOD PATH roles), one a line, and exit\n"
	"  --help            this text\n";

/* SIGTERM or SIGINT: the loop ends, requests in progress answered: the
 * verification requests waiting or in flight are verified and answered
 * first, and the loop runs a moment more to write their answers. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct svc *s = arg;
	const struct timeval moment = { 0, 200000 };

	(void)sig;
	(void)what;
	event_base_loopexit(s->base, svc_batches_settle_all(s) ? &moment : NULL);
}

static int number(const char *s, unsigned long min, unsigned long max, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 10);
	return s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0 && *v >= min && *v <= max;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "home", required_argument, NULL, 'H' },      { "archive", required_argument, NULL, 'a' },
		{ "shares", required_argument, NULL, 's' },    { "boxes", required_argument, NULL, 'b' },
		{ "cert", required_argument, NULL, 'c' },      { "key", required_argument, NULL, 'k' },
		{ "port", required_argument, NULL, 'p' },      { "max-body", required_argument, NULL, 'B' },
		{ "max-items", required_argument, NULL, 'I' }, { "timeout", required_argument, NULL, 'T' },
		{ "listen", required_argument, NULL, 'L' },    { "audit", required_argument, NULL, 'A' },
		{ "audit-timeout", required_argument, NULL, 'W' }, { "help", no_argument, NULL, 'h' },
		{ "routes", no_argument, NULL, 'R' },
		{ "max-connections", required_argument, NULL, 'C' }, { "rate", required_argument, NULL, 'r' },
		{ "burst", required_argument, NULL, 'U' },           { "cache-idle", required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	struct svc s = { .max_body = 1u << 20, .max_items = 1000, .timeout = 30, .max_conns = 256, .rate = 200,
		         .cache_idle_ms = 1000 };
	struct mk_kms_opts o = { 0 };
	const char *cert = NULL, *key = NULL, *host = "127.0.0.1", *audit = NULL;
	char trust[PATH_MAX], auditp[PATH_MAX], detail[512] = "";
	unsigned audit_ms = 2000;
	struct event *sigs[2] = { NULL, NULL };
	unsigned long port = 8443, v, burst = 0;
	int opt, st = 1;
	enum mk_err e;

	o.home = getenv("METERKEY_HOME");
	while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (opt) {
		case 'H': o.home = optarg; break;
		case 'a': o.archive_url = optarg; break;
		case 's': o.shares_dir = optarg; break;
		case 'b': o.boxes_dir = optarg; break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'p':
			if (!number(optarg, 0, 65535, &port))
				goto bad;
			break;
		case 'B':
			if (!number(optarg, 1024, 64u << 20, &v))
				goto bad;
			s.max_body = v;
			break;
		case 'I':
			if (!number(optarg, 1, 100000, &v))
				goto bad;
			s.max_items = v;
			break;
		case 'T':
			if (!number(optarg, 1, 3600, &v))
				goto bad;
			s.timeout = (unsigned)v;
			break;
		case 'L': host = optarg; break;
		case 'A': audit = optarg; break;
		case 'W':
			if (!number(optarg, 1, 600000, &v))
				goto bad;
			audit_ms = (unsigned)v;
			break;
		case 'C':
			if (!number(optarg, 1, 100000, &v))
				goto bad;
			s.max_conns = v;
			break;
		case 'r':
			if (!number(optarg, 0, 1000000, &v))
				goto bad;
			s.rate = (double)v;
			break;
		case 'U':
			if (!number(optarg, 1, 1000000, &burst))
				goto bad;
			break;
		case 'K':
			if (!number(optarg, 0, 3600000, &v))
				goto bad;
			s.cache_idle_ms = (unsigned)v;
			break;
		case 'h': fputs(usage, stdout); return 0;
		case 'R': svc_routes_print(stdout); return 0;
		default: goto bad;
		}
	}
	if (optind != argc || o.home == NULL || o.home[0] == '\0' || cert == NULL || key == NULL) {
		fprintf(stderr, "meterkeyd: --home (or $METERKEY_HOME), --cert and --key are needed; see meterkeyd --help\n");
		return 2;
	}
	if (snprintf(trust, sizeof(trust), "%s/trust/root.pem", o.home) >= (int)sizeof(trust) ||
	    mk_cert_read_pem(trust, &s.root) != MK_OK) {
		svc_log("error", "cannot read the home's root certificate", json_pack("{s:s}", "file", trust));
		goto out;
	}
	o.detail = detail;
	o.detail_cap = sizeof(detail);
	if ((e = mk_kms_open(&o, &s.kms)) != MK_OK) {
		svc_log("error", "cannot open the home",
		        json_pack("{s:s,s:s,s:s}", "home", o.home, "why", detail[0] ? detail : mk_strerror(e), "error",
		                  mk_err_name(e)));
		goto out;
	}
	s.burst = burst > 0 ? (double)burst : s.rate;
	signal(SIGPIPE, SIG_IGN);
	s.box_procs = o.boxes_dir != NULL;
	if (audit == NULL && snprintf(auditp, sizeof(auditp), "%s/service-audit.log", o.home) < (int)sizeof(auditp))
		audit = auditp;
	if (audit == NULL || svc_audit_open(&s, audit, audit_ms) != MK_OK) {
		svc_log("error", "cannot open the audit log",
		        json_pack("{s:s}", "file", audit != NULL ? audit : "(path too long)"));
		goto out;
	}
	{
		size_t nr;
		const char *const *names = svc_route_names(&nr);

		if ((e = svc_metrics_new(&s, names, nr)) != MK_OK || (e = svc_conns_new(&s)) != MK_OK ||
		    (e = svc_rate_new(&s)) != MK_OK)
			goto out;
	}
	if ((e = svc_start(&s, host, (uint16_t)port, cert, key, trust)) != MK_OK) {
		svc_log("error", "cannot serve",
		        json_pack("{s:s,s:I,s:s}", "host", host, "port", (json_int_t)port, "why",
		                  e == MK_ERR_CERT_KEY
		                          ? "the certificate, the key or the root does not load (or they do not match)"
		                          : "the address is in use or not this host's"));
		goto out;
	}
	if ((sigs[0] = evsignal_new(s.base, SIGTERM, on_signal, &s)) == NULL ||
	    (sigs[1] = evsignal_new(s.base, SIGINT, on_signal, &s)) == NULL || evsignal_add(sigs[0], NULL) != 0 ||
	    evsignal_add(sigs[1], NULL) != 0)
		goto out;
	s.started = (int64_t)time(NULL);
	{
		char url[300];

		snprintf(url, sizeof(url), "https://%s:%u", host, (unsigned)s.port);
		svc_log("info", "listening", json_pack("{s:s,s:s,s:s}", "url", url, "home", o.home, "boxes",
		                                        s.box_procs ? o.boxes_dir : "in this process"));
	}
	event_base_dispatch(s.base);
	svc_log("info", "stopped", NULL);
	st = 0;
out:
	for (int i = 0; i < 2; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	svc_batches_free(&s);   /* the requests waiting verified and answered */
	svc_verifiers_free(&s); /* its boxes closed before the loop and the KMS go */
	svc_stop(&s); /* before the connections' table: their ends are counted in it */
	svc_conns_free(&s);
	svc_rate_free(&s);
	svc_audit_close(&s);
	svc_metrics_free(&s);
	X509_free(s.root);
	mk_kms_close(s.kms);
	return st;
bad:
	fprintf(stderr, "meterkeyd: not a valid use; see meterkeyd --help\n");
	return 2;
}
