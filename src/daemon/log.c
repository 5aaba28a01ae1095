/*
 * meterkeyd's log (docs/internals/service.md): one JSON object a line on
 * standard error (the journal under systemd), {"time","level","msg",...}:
 * the start and the stop, what stops it from starting, and each request
 * answered (method, path, status, client). Never a secret: no body, no
 * indicium, no key; a client by its certificate's name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "daemon.h"

void svc_log(const char *level, const char *msg, json_t *fields)
{
	json_t *o = json_object();
	char t[32], *line;
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(t + 19, sizeof(t) - 19, ".%03dZ", (int)(now.tv_nsec / 1000000) % 1000);
	if (o == NULL || json_object_set_new(o, "time", json_string(t)) != 0 ||
	    json_object_set_new(o, "level", json_string(level)) != 0 || json_object_set_new(o, "msg", json_string(msg)) != 0 ||
	    (fields != NULL && json_object_update(o, fields) != 0) || (line = json_dumps(o, JSON_COMPACT)) == NULL) {
		fprintf(stderr, "{\"level\":\"%s\",\"msg\":\"out of memory writing the log\"}\n", level);
	} else {
		fprintf(stderr, "%s\n", line);
		free(line);
	}
	fflush(stderr);
	json_decref(fields);
	json_decref(o);
}
