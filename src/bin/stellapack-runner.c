/*-------------------------------------------------------------------------
 *
 * stellapack-runner.c
 *		Reference task runner for stellapack external jobs.
 *
 * The runner claims jobs from one or more stellapack queues, runs the
 * command named in each job's spec as a child process, streams the
 * child's stdout and stderr into the run log, keeps the job's lease alive
 * with heartbeats and finally reports how the command ended.
 *
 * Everything happens in a single thread.  One poll() loop watches a single
 * libpq connection (also used for LISTEN), the output pipes of every
 * child and a signalfd delivering SIGTERM, SIGINT and SIGCHLD.  The
 * connection is used asynchronously with at most one query in flight, so
 * a slow database never stops the runner from reading its children's
 * output or reacting to signals.  See docs/runner.md for the user-facing
 * description.
 *
 * src/bin/stellapack-runner.c
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <jansson.h>
#include <libpq-fe.h>

/* what the lease functions raise when the job's run was canceled */
#define SQLSTATE_RUN_CANCELED "SP001"

typedef int64_t int64;

/* Output handling */
#define LINE_MAX_BYTES		(64 * 1024)		/* longer lines are split */
#define READ_CHUNK_BYTES	(64 * 1024)		/* one read() from a pipe */
#define READS_PER_WAKEUP	4				/* fairness between pipes */
#define BATCH_MAX_LINES		500				/* lines per append call */
#define BATCH_MAX_BYTES		(4 * 1024 * 1024)	/* bytes per append call */
#define BATCH_DELAY_MS		50				/* longest wait before sending */
#define PENDING_MAX_BYTES	(10 * 1024 * 1024)	/* per job, then drop */
#define BACKPRESSURE_BYTES	(1024 * 1024)	/* stop reading pipes above */
#define BACKPRESSURE_LINES	(10 * BATCH_MAX_LINES)

/* Process handling */
#define KILL_GRACE_MS		5000	/* SIGTERM to SIGKILL */
#define DRAIN_GRACE_MS		1000	/* main process exit to group kill */
#define CLOSE_GRACE_MS		2000	/* group kill to forced pipe close */

/* Database handling */
#define CLAIM_POLL_MS		5000	/* fallback poll when LISTEN is quiet */
#define RECONNECT_MIN_MS	1000
#define RECONNECT_MAX_MS	30000
#define CONNECT_TIMEOUT_MS	30000	/* one asynchronous connection attempt */
#define REQUEST_TIMEOUT_MS	60000	/* one query; then the link is reset */
#define RETRY_DELAY_MS		1000	/* after a transient completion error */
#define LISTEN_RETRY_MS		5000

#define MAX_JOBS			256
#define DEFAULT_LEASE_MS	30000

#define RUNNER_NAME			"stellapack-runner"

/* A growable byte buffer, always kept NUL-terminated once allocated. */
typedef struct StrBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} StrBuf;

/* One line of output waiting to be appended to the run log. */
typedef struct LogLine
{
	struct LogLine *next;
	const char *stream;			/* "stdout", "stderr" or "log" */
	const char *level;			/* "info", "warning" or "error" */
	size_t		len;
	char		text[];
} LogLine;

/* The read end of one of a child's output pipes. */
typedef struct OutStream
{
	int			fd;				/* -1 once closed */
	const char *name;			/* "stdout" or "stderr" */
	StrBuf		partial;		/* bytes after the last newline */
} OutStream;

typedef enum KillReason
{
	KILL_NONE,
	KILL_TIMEOUT,
	KILL_CANCELED,
	KILL_LEASE_LOST,
	KILL_STOPPED
} KillReason;

/* Everything the runner knows about one claimed job. */
typedef struct Job
{
	bool		in_use;
	uint64_t	generation;		/* tells stale query results apart */

	/* from job_claim() */
	char	   *lease_id;
	char	   *job_run_id;
	char	   *run_id;
	char	   *name;
	char	   *attempt;

	/* the command */
	pid_t		pid;			/* 0 when no process was started */
	bool		reaped;
	int			wait_status;
	int64		started_at;
	int64		ended_at;
	int64		deadline;		/* spec timeout instant, 0 if none */
	char	   *timeout_text;
	OutStream	out[2];
	char	   *fail_error;		/* invalid spec or failure to start */
	char	   *outcome;		/* summary for --verbose */

	/* killing */
	KillReason	kill_reason;
	bool		term_sent;
	int64		kill_at;		/* when to send SIGKILL, 0 if not pending */
	bool		group_killed;	/* leftovers killed after main exit */
	int64		drain_deadline;
	int64		close_deadline;
	bool		drop;			/* lease gone: never complete */

	/* output not yet in the run log */
	LogLine    *log_head;
	LogLine    *log_tail;
	int			log_count;
	size_t		log_bytes;
	int64		log_first_at;
	long		dropped_lines;
	int64		lines_appended; /* stored in the run log under the lease */

	/* database bookkeeping */
	int64		next_heartbeat;
	int64		retry_at;		/* completion retry after a transient error */
} Job;

typedef enum ConnState
{
	CONN_DOWN,
	CONN_CONNECTING,
	CONN_READY
} ConnState;

typedef enum ListenState
{
	LISTEN_NEEDED,
	LISTEN_RETRY,
	LISTEN_DONE
} ListenState;

typedef enum RequestKind
{
	REQ_NONE,
	REQ_CHANNELS,
	REQ_LISTEN,
	REQ_CLAIM,
	REQ_HEARTBEAT,
	REQ_LOG,
	REQ_COMPLETE
} RequestKind;

/* The one query that may be in flight on the connection. */
typedef struct Request
{
	RequestKind kind;
	int			slot;			/* job slot, -1 if none */
	uint64_t	generation;
	int			count;			/* lines sent or jobs asked for */
	bool		claims;			/* a completion that also asked for jobs */
	bool		failed;
	int64		sent_at;
} Request;

/* Options */
static char **queues;
static int	nqueues;
static int	max_jobs = 1;
static char *worker_name;
static int64 lease_ms = DEFAULT_LEASE_MS;
static char *conninfo;
static bool verbose;

/* Connection state */
static PGconn *conn;
static ConnState conn_state = CONN_DOWN;
static PostgresPollingStatusType connect_status;
static int64 connect_started;
static int64 reconnect_at;
static int64 backoff_ms = RECONNECT_MIN_MS;
static bool flush_pending;
static Request inflight;

/* LISTEN state */
static char **channels;
static ListenState listen_state = LISTEN_NEEDED;
static int64 listen_retry_at;

/* Jobs and scheduling */
static Job *jobs;
static uint64_t next_generation = 1;
static int64 next_claim_at;
static bool notified_during_claim;
static bool complete_and_claim = true;	/* until the server lacks it */
static bool log_first_line = true;	/* likewise, first_line of log batches */
static int64 claim_backoff_until;	/* after a failed claim */
static int	stop_requests;
static int	sigfd = -1;
static char *queues_literal;
static char lease_text[64];
static StrBuf scratch;

static void conn_lost(const char *fmt,...)
			__attribute__((format(printf, 1, 2)));
static void runner_log(const char *fmt,...)
			__attribute__((format(printf, 1, 2)));
static void job_note(Job *job, const char *level, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
static char *xasprintf(const char *fmt,...)
			__attribute__((format(printf, 1, 2)));


/*
 * Returns the monotonic clock in milliseconds.
 */
static int64
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Rewrites msg in place so that it fits on one line: every run of white
 * space (libpq messages contain newlines and tabs) becomes a single space
 * and white space at either end is removed.
 */
static void
clean_message(char *msg)
{
	char	   *src = msg;
	char	   *dst = msg;
	bool		space = false;

	while (*src && isspace((unsigned char) *src))
		src++;
	for (; *src; src++)
	{
		if (isspace((unsigned char) *src))
			space = true;
		else
		{
			if (space)
				*dst++ = ' ';
			space = false;
			*dst++ = *src;
		}
	}
	*dst = '\0';
}

/*
 * Prints one diagnostic line to stderr, prefixed with the wall-clock time
 * and the program name.  Multi-line messages are folded onto one line.
 */
static void
runner_log(const char *fmt,...)
{
	char		msg[2048];
	char		stamp[64];
	char		zone[16];
	struct timeval tv;
	struct tm	tm;
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	clean_message(msg);

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%Z", &tm);
	fprintf(stderr, "%s.%03d %s " RUNNER_NAME ": %s\n",
			stamp, (int) (tv.tv_usec / 1000), zone, msg);
	fflush(stderr);
}

/*
 * Reports that memory ran out and exits; there is no sensible way to go
 * on without it.
 */
static void
out_of_memory(void)
{
	runner_log("out of memory");
	exit(1);
}

/*
 * Allocates memory or exits.
 */
static void *
xmalloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
		out_of_memory();
	return p;
}

/*
 * Allocates zeroed memory or exits.
 */
static void *
xcalloc(size_t n, size_t size)
{
	void	   *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		out_of_memory();
	return p;
}

/*
 * Duplicates a string or exits; NULL stays NULL.
 */
static char *
xstrdup(const char *s)
{
	char	   *p;

	if (s == NULL)
		return NULL;
	p = strdup(s);
	if (p == NULL)
		out_of_memory();
	return p;
}

/*
 * Formats into freshly allocated memory, like asprintf but exiting when
 * memory runs out.
 */
static char *
xasprintf(const char *fmt,...)
{
	va_list		ap;
	char	   *result;

	va_start(ap, fmt);
	if (vasprintf(&result, fmt, ap) < 0)
		out_of_memory();
	va_end(ap);
	return result;
}

/*
 * Makes sure the buffer has room for extra more bytes plus a terminator.
 */
static void
sb_reserve(StrBuf *sb, size_t extra)
{
	size_t		need = sb->len + extra + 1;

	if (need <= sb->cap)
		return;
	if (sb->cap == 0)
		sb->cap = 256;
	while (sb->cap < need)
		sb->cap *= 2;
	sb->data = realloc(sb->data, sb->cap);
	if (sb->data == NULL)
		out_of_memory();
}

/*
 * Appends len bytes to the buffer.
 */
static void
sb_append(StrBuf *sb, const char *data, size_t len)
{
	sb_reserve(sb, len);
	memcpy(sb->data + sb->len, data, len);
	sb->len += len;
	sb->data[sb->len] = '\0';
}

/*
 * Appends one byte to the buffer.
 */
static void
sb_appendc(StrBuf *sb, char c)
{
	sb_reserve(sb, 1);
	sb->data[sb->len++] = c;
	sb->data[sb->len] = '\0';
}

/*
 * Appends a NUL-terminated string to the buffer.
 */
static void
sb_appends(StrBuf *sb, const char *s)
{
	sb_append(sb, s, strlen(s));
}

/*
 * Empties the buffer without giving its memory back.
 */
static void
sb_reset(StrBuf *sb)
{
	sb->len = 0;
	if (sb->data)
		sb->data[0] = '\0';
}

/*
 * Removes the first n bytes of the buffer.
 */
static void
sb_consume(StrBuf *sb, size_t n)
{
	if (n == 0)
		return;
	if (n >= sb->len)
	{
		sb_reset(sb);
		return;
	}
	memmove(sb->data, sb->data + n, sb->len - n);
	sb->len -= n;
	sb->data[sb->len] = '\0';
}

/*
 * Releases the buffer's memory.
 */
static void
sb_free(StrBuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}

/*
 * Copies data into out as valid UTF-8: every byte sequence that is not
 * well-formed UTF-8, and every NUL byte (which text values cannot hold),
 * becomes U+FFFD.  A truncated or broken sequence is replaced by a single
 * U+FFFD covering its longest well-formed prefix.
 */
static void
sanitize_utf8(StrBuf *out, const char *data, size_t len)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	const unsigned char *p = (const unsigned char *) data;
	size_t		i = 0;

	sb_reset(out);
	sb_reserve(out, len);
	while (i < len)
	{
		unsigned char c = p[i];
		unsigned char lo = 0x80;
		unsigned char hi = 0xBF;
		size_t		need;
		size_t		j;

		if (c >= 0x01 && c < 0x80)
		{
			sb_appendc(out, (char) c);
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			need = 1;
		else if (c >= 0xE0 && c <= 0xEF)
		{
			need = 2;
			if (c == 0xE0)
				lo = 0xA0;		/* no overlong forms */
			else if (c == 0xED)
				hi = 0x9F;		/* no surrogates */
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			need = 3;
			if (c == 0xF0)
				lo = 0x90;		/* no overlong forms */
			else if (c == 0xF4)
				hi = 0x8F;		/* nothing above U+10FFFF */
		}
		else
		{
			/* NUL, stray continuation byte or impossible lead byte */
			sb_appends(out, replacement);
			i++;
			continue;
		}

		for (j = 1; j <= need; j++)
		{
			unsigned char cc;

			if (i + j >= len)
				break;
			cc = p[i + j];
			if (j == 1 ? (cc < lo || cc > hi) : (cc < 0x80 || cc > 0xBF))
				break;
		}
		if (j > need)
		{
			sb_append(out, data + i, need + 1);
			i += need + 1;
		}
		else
		{
			sb_appends(out, replacement);
			i += j;
		}
	}
}

/*
 * Appends s to buf as one double-quoted element of a PostgreSQL array
 * literal.
 */
static void
append_array_element(StrBuf *buf, const char *s, size_t len)
{
	size_t		i;

	sb_reserve(buf, len + 2);
	sb_appendc(buf, '"');
	for (i = 0; i < len; i++)
	{
		if (s[i] == '"' || s[i] == '\\')
			sb_appendc(buf, '\\');
		sb_appendc(buf, s[i]);
	}
	sb_appendc(buf, '"');
}

#define DURATION_SYNTAX \
	"must be made of <integer><unit> parts, units d, h, m, s, ms in that " \
	"order, like \"90s\" or \"1h30m\""

/*
 * Parses a duration made of <integer><unit> parts into milliseconds, with
 * the same rules as durations in pack manifests: units d, h, m, s and ms,
 * largest first, each at most once (for instance "1h30m" or "250ms").
 * Returns NULL on success, otherwise a static message saying what is
 * wrong.
 */
static const char *
parse_duration(const char *s, int64 *result)
{
	int64		total = 0;
	const char *p = s;
	int			last_rank = -1;

	if (*p == '\0')
		return "is empty";
	while (*p)
	{
		int64		value = 0;
		int64		unit;
		int			rank;

		if (!isdigit((unsigned char) *p))
			return DURATION_SYNTAX;
		while (isdigit((unsigned char) *p))
		{
			if (value > (INT64_MAX - 9) / 10)
				return "is too large";
			value = value * 10 + (*p - '0');
			p++;
		}
		if (p[0] == 'm' && p[1] == 's')
		{
			unit = 1;
			rank = 4;
			p++;
		}
		else if (*p == 's')
			unit = 1000, rank = 3;
		else if (*p == 'm')
			unit = 60 * 1000, rank = 2;
		else if (*p == 'h')
			unit = 3600 * 1000, rank = 1;
		else if (*p == 'd')
			unit = 86400 * 1000, rank = 0;
		else
			return DURATION_SYNTAX;
		p++;
		if (rank <= last_rank)
			return DURATION_SYNTAX;
		last_rank = rank;
		if (value > INT64_MAX / unit || total > INT64_MAX - value * unit)
			return "is too large";
		total += value * unit;
	}
	if (total <= 0)
		return "must be positive";
	*result = total;
	return NULL;
}

/*
 * Returns the conventional name of a signal, such as "SIGKILL".  Unknown
 * numbers get a generated name in a static buffer.
 */
static const char *
signal_name(int sig)
{
	static char buf[32];

	switch (sig)
	{
		case SIGHUP:
			return "SIGHUP";
		case SIGINT:
			return "SIGINT";
		case SIGQUIT:
			return "SIGQUIT";
		case SIGILL:
			return "SIGILL";
		case SIGTRAP:
			return "SIGTRAP";
		case SIGABRT:
			return "SIGABRT";
		case SIGBUS:
			return "SIGBUS";
		case SIGFPE:
			return "SIGFPE";
		case SIGKILL:
			return "SIGKILL";
		case SIGUSR1:
			return "SIGUSR1";
		case SIGSEGV:
			return "SIGSEGV";
		case SIGUSR2:
			return "SIGUSR2";
		case SIGPIPE:
			return "SIGPIPE";
		case SIGALRM:
			return "SIGALRM";
		case SIGTERM:
			return "SIGTERM";
		case SIGCHLD:
			return "SIGCHLD";
		case SIGCONT:
			return "SIGCONT";
		case SIGSTOP:
			return "SIGSTOP";
		case SIGTSTP:
			return "SIGTSTP";
		case SIGTTIN:
			return "SIGTTIN";
		case SIGTTOU:
			return "SIGTTOU";
		case SIGURG:
			return "SIGURG";
		case SIGXCPU:
			return "SIGXCPU";
		case SIGXFSZ:
			return "SIGXFSZ";
		case SIGVTALRM:
			return "SIGVTALRM";
		case SIGPROF:
			return "SIGPROF";
		case SIGWINCH:
			return "SIGWINCH";
		case SIGSYS:
			return "SIGSYS";
#ifdef SIGSTKFLT
		case SIGSTKFLT:
			return "SIGSTKFLT";
#endif
#ifdef SIGIO
		case SIGIO:
			return "SIGIO";
#endif
#ifdef SIGPWR
		case SIGPWR:
			return "SIGPWR";
#endif
		default:
			break;
	}
#ifdef SIGRTMIN
	if (sig >= SIGRTMIN && sig <= SIGRTMAX)
	{
		snprintf(buf, sizeof(buf), "SIGRTMIN+%d", sig - SIGRTMIN);
		return buf;
	}
#endif
	snprintf(buf, sizeof(buf), "SIG%d", sig);
	return buf;
}

/*
 * Returns a short label for a job in diagnostics: its name and run id.
 */
static const char *
job_label(Job *job)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "job \"%s\" (run %s)",
			 job->name ? job->name : "?",
			 job->run_id ? job->run_id : "?");
	return buf;
}


/* ---------------------------------------------------------------------
 * Output buffering
 * ---------------------------------------------------------------------
 */

/*
 * Queues one already-valid UTF-8 line for the run log without looking at
 * the memory bound; used for the runner's own short notes.
 */
static void
queue_line_unbounded(Job *job, const char *stream, const char *level,
					 const char *text, size_t len)
{
	LogLine    *line = xmalloc(sizeof(LogLine) + len + 1);

	line->next = NULL;
	line->stream = stream;
	line->level = level;
	line->len = len;
	memcpy(line->text, text, len);
	line->text[len] = '\0';

	if (job->log_tail)
		job->log_tail->next = line;
	else
	{
		job->log_head = line;
		job->log_first_at = now_ms();
	}
	job->log_tail = line;
	job->log_count++;
	job->log_bytes += len;
}

/*
 * Queues the marker that tells the reader how many lines were dropped,
 * if any were.
 */
static void
queue_drop_marker(Job *job)
{
	char		msg[160];
	int			len;

	if (job->dropped_lines == 0)
		return;
	len = snprintf(msg, sizeof(msg),
				   RUNNER_NAME ": %ld line(s) of output dropped because "
				   "they could not be sent to the database in time",
				   job->dropped_lines);
	job->dropped_lines = 0;
	queue_line_unbounded(job, "log", "warning", msg, (size_t) len);
}

/*
 * Queues one line of the child's output, replacing invalid UTF-8.  Once
 * PENDING_MAX_BYTES are waiting, further lines are counted and dropped;
 * a marker line takes their place as soon as there is room again.
 */
static void
queue_output_line(Job *job, const char *stream, const char *data,
				  size_t len)
{
	if (job->drop)
		return;
	sanitize_utf8(&scratch, data, len);
	if (job->log_bytes + scratch.len > PENDING_MAX_BYTES)
	{
		job->dropped_lines++;
		return;
	}
	queue_drop_marker(job);
	queue_line_unbounded(job, stream, "info", scratch.data, scratch.len);
}

/*
 * Adds a note from the runner itself to the job's run log (for example
 * why the command could not be started) and repeats it on stderr.
 */
static void
job_note(Job *job, const char *level, const char *fmt,...)
{
	char		msg[1024];
	char		line[1100];
	va_list		ap;
	int			len;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	runner_log("%s: %s", job_label(job), msg);
	if (job->drop)
		return;
	len = snprintf(line, sizeof(line), RUNNER_NAME ": %s", msg);
	if (len >= (int) sizeof(line))
		len = sizeof(line) - 1;
	sanitize_utf8(&scratch, line, (size_t) len);
	queue_line_unbounded(job, "log", level, scratch.data, scratch.len);
}

/*
 * Frees every queued line of a job.
 */
static void
discard_log(Job *job)
{
	LogLine    *line = job->log_head;

	while (line)
	{
		LogLine    *next = line->next;

		free(line);
		line = next;
	}
	job->log_head = job->log_tail = NULL;
	job->log_count = 0;
	job->log_bytes = 0;
	job->dropped_lines = 0;
}

/*
 * Removes the first n queued lines of a job, after they were sent.
 */
static void
consume_log(Job *job, int n)
{
	while (n-- > 0 && job->log_head)
	{
		LogLine    *line = job->log_head;

		job->log_head = line->next;
		job->log_count--;
		job->log_bytes -= line->len;
		free(line);
	}
	if (job->log_head == NULL)
		job->log_tail = NULL;
	else
		job->log_first_at = now_ms();
}

/*
 * Returns how many bytes of a line of n bytes may go into one log entry:
 * at most LINE_MAX_BYTES, moved back so as not to cut a UTF-8 character
 * in two.
 */
static size_t
line_cut(const char *p, size_t n)
{
	size_t		cut;
	int			back;

	if (n <= LINE_MAX_BYTES)
		return n;
	cut = LINE_MAX_BYTES;
	for (back = 0; back < 3; back++)
	{
		if (((unsigned char) p[cut - back] & 0xC0) != 0x80)
			return cut - back;
	}
	return cut;
}

/*
 * Queues a complete line, splitting it into pieces of at most
 * LINE_MAX_BYTES.
 */
static void
queue_long_line(Job *job, const char *stream, const char *p, size_t n)
{
	do
	{
		size_t		cut = line_cut(p, n);

		queue_output_line(job, stream, p, cut);
		p += cut;
		n -= cut;
	} while (n > 0);
}

/*
 * Takes bytes just read from one of the child's pipes and turns every
 * complete line into a log entry; an unfinished line waits in the
 * stream's partial buffer unless it is already too long.
 */
static void
take_output(Job *job, OutStream *os, const char *data, size_t len)
{
	size_t		start = 0;

	sb_append(&os->partial, data, len);
	for (;;)
	{
		char	   *base = os->partial.data + start;
		size_t		avail = os->partial.len - start;
		char	   *nl = memchr(base, '\n', avail);

		if (nl)
		{
			queue_long_line(job, os->name, base, (size_t) (nl - base));
			start += (size_t) (nl - base) + 1;
		}
		else if (avail > LINE_MAX_BYTES)
		{
			size_t		cut = line_cut(base, avail);

			queue_output_line(job, os->name, base, cut);
			start += cut;
		}
		else
			break;
	}
	sb_consume(&os->partial, start);
}

/*
 * Closes one output stream, sending any final line that had no newline.
 */
static void
close_stream(Job *job, OutStream *os)
{
	if (os->fd < 0)
		return;
	close(os->fd);
	os->fd = -1;
	if (os->partial.len > 0)
		queue_long_line(job, os->name, os->partial.data, os->partial.len);
	sb_free(&os->partial);
	if (job->out[0].fd < 0 && job->out[1].fd < 0)
		queue_drop_marker(job);
}

/*
 * Reads what is available on one of the child's pipes.  With force set
 * the pipe is drained until it would block and then closed regardless;
 * that is used when leftover processes keep it open after the job ended.
 */
static void
read_stream(Job *job, OutStream *os, bool force)
{
	char		buf[READ_CHUNK_BYTES];
	int			reads;

	for (reads = 0; force || reads < READS_PER_WAKEUP; reads++)
	{
		ssize_t		n = read(os->fd, buf, sizeof(buf));

		if (n > 0)
		{
			take_output(job, os, buf, (size_t) n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
		{
			if (force)
				close_stream(job, os);
			return;
		}
		if (n < 0)
			runner_log("%s: could not read %s of the command: %s",
					   job_label(job), os->name, strerror(errno));
		close_stream(job, os);
		return;
	}
}


/* ---------------------------------------------------------------------
 * Job specs and child processes
 * ---------------------------------------------------------------------
 */

/* What a job's spec asks for, once validated. */
typedef struct JobSpec
{
	char	  **argv;
	int			nenv;
	char	  **env_names;
	char	  **env_values;
	char	   *cwd;
	int64		timeout_ms;
	char	   *timeout_text;
} JobSpec;

/*
 * Frees everything a JobSpec owns.
 */
static void
free_spec(JobSpec *spec)
{
	int			i;

	if (spec->argv)
		for (i = 0; spec->argv[i]; i++)
			free(spec->argv[i]);
	free(spec->argv);
	for (i = 0; i < spec->nenv; i++)
	{
		free(spec->env_names[i]);
		free(spec->env_values[i]);
	}
	free(spec->env_names);
	free(spec->env_values);
	free(spec->cwd);
	free(spec->timeout_text);
	memset(spec, 0, sizeof(*spec));
}

/*
 * Returns true if value is a JSON string with no embedded NUL character.
 */
static bool
is_plain_string(json_t *value)
{
	return json_is_string(value) &&
		strlen(json_string_value(value)) == json_string_length(value);
}

/*
 * Validates a job spec and fills in spec.  Returns NULL when the spec is
 * usable, otherwise an allocated message saying why it is not.
 */
static char *
parse_spec(const char *text, JobSpec *spec)
{
	json_error_t jerr;
	json_t	   *root;
	json_t	   *value;
	char	   *error = NULL;
	size_t		i;

	memset(spec, 0, sizeof(*spec));
	if (text == NULL)
		return xstrdup("the job has no spec");
	root = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL)
		return xasprintf("spec is not valid JSON: %s", jerr.text);
	if (!json_is_object(root))
	{
		error = xstrdup("spec must be a JSON object");
		goto done;
	}

	value = json_object_get(root, "command");
	if (!json_is_array(value) || json_array_size(value) == 0)
	{
		error = xstrdup("\"command\" must be a non-empty array of strings");
		goto done;
	}
	spec->argv = xcalloc(json_array_size(value) + 1, sizeof(char *));
	for (i = 0; i < json_array_size(value); i++)
	{
		json_t	   *arg = json_array_get(value, i);

		if (!is_plain_string(arg))
		{
			error = xasprintf("\"command\" must be a non-empty array of "
							  "strings, but element %zu is not a string "
							  "(or holds a NUL character)", i);
			goto done;
		}
		spec->argv[i] = xstrdup(json_string_value(arg));
	}
	if (spec->argv[0][0] == '\0')
	{
		error = xstrdup("\"command\" must not start with an empty string");
		goto done;
	}

	value = json_object_get(root, "env");
	if (value != NULL && !json_is_null(value))
	{
		const char *key;
		json_t	   *v;

		if (!json_is_object(value))
		{
			error = xstrdup("\"env\" must be an object of strings");
			goto done;
		}
		spec->env_names = xcalloc(json_object_size(value), sizeof(char *));
		spec->env_values = xcalloc(json_object_size(value), sizeof(char *));
		json_object_foreach(value, key, v)
		{
			if (key[0] == '\0' || strchr(key, '=') != NULL)
			{
				error = xasprintf("\"env\" holds an invalid variable name "
								  "\"%s\"", key);
				goto done;
			}
			if (!is_plain_string(v))
			{
				error = xasprintf("\"env\" value of \"%s\" must be a string",
								  key);
				goto done;
			}
			spec->env_names[spec->nenv] = xstrdup(key);
			spec->env_values[spec->nenv] = xstrdup(json_string_value(v));
			spec->nenv++;
		}
	}

	value = json_object_get(root, "cwd");
	if (value != NULL && !json_is_null(value))
	{
		if (!is_plain_string(value) || json_string_length(value) == 0)
		{
			error = xstrdup("\"cwd\" must be a non-empty string");
			goto done;
		}
		spec->cwd = xstrdup(json_string_value(value));
	}

	value = json_object_get(root, "timeout");
	if (value != NULL && !json_is_null(value))
	{
		if (json_is_integer(value))
		{
			json_int_t	secs = json_integer_value(value);

			if (secs <= 0 || secs > INT64_MAX / 1000)
			{
				error = xstrdup("\"timeout\" must be a positive number of "
								"seconds");
				goto done;
			}
			spec->timeout_ms = (int64) secs * 1000;
			spec->timeout_text = xasprintf("%llds", (long long) secs);
		}
		else if (is_plain_string(value))
		{
			const char *why = parse_duration(json_string_value(value),
											 &spec->timeout_ms);

			if (why)
			{
				error = xasprintf("\"timeout\" %s", why);
				goto done;
			}
			spec->timeout_text = xstrdup(json_string_value(value));
		}
		else
		{
			error = xstrdup("\"timeout\" must be a duration string like "
							"\"1h30m\" or an integer number of seconds");
			goto done;
		}
	}

done:
	json_decref(root);
	if (error)
		free_spec(spec);
	return error;
}

/* How a child tells its parent that it could not exec the command. */
typedef struct ChildFailure
{
	int			stage;
	int			err;
	int			index;			/* env variable concerned, if any */
} ChildFailure;

#define STAGE_SETUP		1
#define STAGE_CHDIR		2
#define STAGE_ENV		3
#define STAGE_EXEC		4

/*
 * Sends a failure report down the status pipe and exits with 127; runs
 * in the child only.
 */
static void
child_fail(int status_fd, int stage, int err, int index)
{
	ChildFailure f;
	ssize_t		n;

	f.stage = stage;
	f.err = err;
	f.index = index;
	do
		n = write(status_fd, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

/*
 * Closes every descriptor from lo to hi inclusive; runs in the child
 * only, to keep descriptors the runner itself inherited away from the
 * command.
 */
static void
close_fds(int lo, int hi)
{
	long		max;
	int			fd;

	if (lo > hi)
		return;
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned int) lo, (unsigned int) hi, 0) == 0)
		return;
#endif
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = lo; fd <= hi && fd < max; fd++)
		close(fd);
}

/*
 * Sets up the freshly forked child and executes the command; never
 * returns.  The child gets its own process group, stdin from /dev/null,
 * the two output pipes, the spec's working directory and an environment
 * made of the runner's own plus the spec's plus the STELLAPACK_ variables.
 */
static void
child_exec(Job *job, JobSpec *spec, int out_fd, int err_fd, int status_fd)
{
	sigset_t	none;
	int			devnull;
	int			i;

	for (i = 1; i < NSIG; i++)
		if (i != SIGKILL && i != SIGSTOP)
			signal(i, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);

	devnull = open("/dev/null", O_RDONLY);
	if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 ||
		dup2(out_fd, STDOUT_FILENO) < 0 || dup2(err_fd, STDERR_FILENO) < 0)
		child_fail(status_fd, STAGE_SETUP, errno, 0);
	if (devnull > STDERR_FILENO)
		close(devnull);
	close_fds(STDERR_FILENO + 1, status_fd - 1);
	close_fds(status_fd + 1, INT_MAX);

	if (spec->cwd && chdir(spec->cwd) < 0)
		child_fail(status_fd, STAGE_CHDIR, errno, 0);

	for (i = 0; i < spec->nenv; i++)
		if (setenv(spec->env_names[i], spec->env_values[i], 1) < 0)
			child_fail(status_fd, STAGE_ENV, errno, i);
	if (setenv("STELLAPACK_RUN_ID", job->run_id ? job->run_id : "", 1) < 0 ||
		setenv("STELLAPACK_JOB", job->name ? job->name : "", 1) < 0 ||
		setenv("STELLAPACK_LEASE_ID", job->lease_id, 1) < 0 ||
		setenv("STELLAPACK_JOB_RUN_ID",
			   job->job_run_id ? job->job_run_id : "", 1) < 0 ||
		setenv("STELLAPACK_ATTEMPT", job->attempt ? job->attempt : "", 1) < 0)
		child_fail(status_fd, STAGE_ENV, errno, -1);

	execvp(spec->argv[0], spec->argv);
	child_fail(status_fd, STAGE_EXEC, errno, 0);
}

/*
 * Makes a pipe whose ends are both close-on-exec and whose read end does
 * not block.
 */
static int
make_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0)
	{
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	return 0;
}

/*
 * Starts the command of a freshly claimed job.  An invalid spec, or a
 * command that cannot be started, leaves the job with fail_error set and
 * no running process, so it goes straight to completion.
 */
static void
start_job(Job *job, const char *spec_text)
{
	JobSpec		spec;
	int			outp[2] = {-1, -1};
	int			errp[2] = {-1, -1};
	int			statp[2] = {-1, -1};
	ChildFailure failure;
	ssize_t		got = 0;
	char	   *error;
	pid_t		pid;

	job->started_at = now_ms();
	error = parse_spec(spec_text, &spec);
	if (error)
	{
		job->fail_error = xasprintf("invalid job spec: %s", error);
		job_note(job, "error", "%s", job->fail_error);
		free(error);
		return;
	}

	if (make_pipe(outp) < 0 || make_pipe(errp) < 0 || make_pipe(statp) < 0)
	{
		job->fail_error = xasprintf("cannot start command: pipe failed: %s",
									strerror(errno));
		goto fail;
	}

	pid = fork();
	if (pid < 0)
	{
		job->fail_error = xasprintf("cannot start command: fork failed: %s",
									strerror(errno));
		goto fail;
	}
	if (pid == 0)
		child_exec(job, &spec, outp[1], errp[1], statp[1]);

	/* parent; also set the group here, whichever side runs first wins */
	setpgid(pid, pid);
	job->pid = pid;
	close(outp[1]);
	close(errp[1]);
	close(statp[1]);
	job->out[0].fd = outp[0];
	job->out[1].fd = errp[0];

	/* the status pipe closes on a successful exec, or carries a failure */
	while (got < (ssize_t) sizeof(failure))
	{
		ssize_t		n = read(statp[0], (char *) &failure + got,
							 sizeof(failure) - got);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
		{
			struct pollfd pfd = {statp[0], POLLIN, 0};

			poll(&pfd, 1, 1000);
			continue;
		}
		if (n <= 0)
			break;
		got += n;
	}
	close(statp[0]);

	if (got == (ssize_t) sizeof(failure))
	{
		const char *what = strerror(failure.err);

		switch (failure.stage)
		{
			case STAGE_CHDIR:
				job->fail_error =
					xasprintf("cannot change directory to \"%s\": %s",
							  spec.cwd, what);
				break;
			case STAGE_ENV:
				job->fail_error =
					xasprintf("cannot set environment variable \"%s\": %s",
							  failure.index >= 0 &&
							  failure.index < spec.nenv ?
							  spec.env_names[failure.index] : "STELLAPACK_*",
							  what);
				break;
			case STAGE_EXEC:
				job->fail_error = xasprintf("cannot execute \"%s\": %s",
											spec.argv[0], what);
				break;
			default:
				job->fail_error =
					xasprintf("cannot set up the command's stdio: %s", what);
				break;
		}
		job_note(job, "error", "%s", job->fail_error);
	}
	else if (spec.timeout_ms > 0)
	{
		job->deadline = job->started_at + spec.timeout_ms;
		job->timeout_text = spec.timeout_text;
		spec.timeout_text = NULL;
	}
	free_spec(&spec);
	return;

fail:
	job_note(job, "error", "%s", job->fail_error);
	if (outp[0] >= 0)
	{
		close(outp[0]);
		close(outp[1]);
	}
	if (errp[0] >= 0)
	{
		close(errp[0]);
		close(errp[1]);
	}
	if (statp[0] >= 0)
	{
		close(statp[0]);
		close(statp[1]);
	}
	free_spec(&spec);
}

/*
 * Starts killing a job's process group: SIGTERM now, SIGKILL after
 * KILL_GRACE_MS if the main process is still there.  The first reason
 * given is the one that is reported.
 */
static void
kill_job(Job *job, KillReason reason)
{
	if (job->kill_reason == KILL_NONE)
		job->kill_reason = reason;
	if (job->pid <= 0 || job->reaped || job->term_sent)
		return;
	if (kill(-job->pid, SIGTERM) < 0 && errno != ESRCH)
		runner_log("%s: could not send SIGTERM to process group %d: %s",
				   job_label(job), (int) job->pid, strerror(errno));
	job->term_sent = true;
	job->kill_at = now_ms() + KILL_GRACE_MS;
}

/*
 * Kills a job's process group at once with SIGKILL.
 */
static void
kill_job_now(Job *job)
{
	if (job->pid > 0 && !(job->reaped && job->group_killed))
		kill(-job->pid, SIGKILL);
}

/*
 * Gives up a job whose lease is gone or whose run was canceled: the
 * command is killed, its output discarded and the job is never
 * completed, since the server already considers it finished or someone
 * else's.
 */
static void
abandon_job(Job *job, KillReason reason, const char *detail)
{
	if (job->drop)
		return;
	if (reason == KILL_CANCELED)
		runner_log("%s: run was canceled%s", job_label(job),
				   job->pid > 0 && !job->reaped ?
				   "; killing the command" : "");
	else
		runner_log("%s: lease lost (%s)%s", job_label(job), detail,
				   job->pid > 0 && !job->reaped ?
				   "; killing the command" : "");
	job->drop = true;
	discard_log(job);
	kill_job(job, reason);
}

/*
 * Returns true once nothing of the job's process is left to wait for:
 * the main process was reaped, leftovers in its group were killed and
 * both output pipes are closed.
 */
static bool
job_process_done(Job *job)
{
	if (job->out[0].fd >= 0 || job->out[1].fd >= 0)
		return false;
	if (job->pid > 0 && (!job->reaped || !job->group_killed))
		return false;
	return true;
}

/*
 * Releases a job slot.
 */
static void
free_job(Job *job)
{
	int			i;

	for (i = 0; i < 2; i++)
	{
		if (job->out[i].fd >= 0)
			close(job->out[i].fd);
		sb_free(&job->out[i].partial);
	}
	discard_log(job);
	free(job->lease_id);
	free(job->job_run_id);
	free(job->run_id);
	free(job->name);
	free(job->attempt);
	free(job->timeout_text);
	free(job->fail_error);
	free(job->outcome);
	memset(job, 0, sizeof(*job));
	job->out[0].fd = job->out[1].fd = -1;
	if (stop_requests == 0)
		next_claim_at = now_ms();
}

/*
 * Reaps every child that has exited and records its status.
 */
static void
reap_children(void)
{
	for (;;)
	{
		int			status;
		pid_t		pid = waitpid(-1, &status, WNOHANG);
		int			i;

		if (pid <= 0)
			break;
		for (i = 0; i < max_jobs; i++)
		{
			Job		   *job = &jobs[i];

			if (job->in_use && job->pid == pid && !job->reaped)
			{
				job->reaped = true;
				job->wait_status = status;
				job->ended_at = now_ms();
				job->drain_deadline = job->ended_at + DRAIN_GRACE_MS;
				job->kill_at = 0;
				break;
			}
		}
	}
}

/*
 * Moves every job along its timers: spec timeouts, SIGKILL escalation,
 * killing what the main process left behind, closing pipes that stay
 * open too long and releasing abandoned jobs.
 */
static void
advance_jobs(int64 now)
{
	int			i;

	for (i = 0; i < max_jobs; i++)
	{
		Job		   *job = &jobs[i];

		if (!job->in_use)
			continue;

		if (job->pid > 0 && !job->reaped)
		{
			if (job->deadline > 0 && now >= job->deadline &&
				job->kill_reason == KILL_NONE)
			{
				job_note(job, "error", "command timed out after %s; "
						 "killing its process group", job->timeout_text);
				kill_job(job, KILL_TIMEOUT);
			}
			if (job->kill_at > 0 && now >= job->kill_at)
			{
				runner_log("%s: command still running %d s after SIGTERM; "
						   "sending SIGKILL", job_label(job),
						   KILL_GRACE_MS / 1000);
				kill(-job->pid, SIGKILL);
				job->kill_at = 0;
			}
		}

		if (job->pid > 0 && job->reaped && !job->group_killed &&
			((job->out[0].fd < 0 && job->out[1].fd < 0) ||
			 now >= job->drain_deadline))
		{
			/* whatever the command left in its group goes too */
			kill(-job->pid, SIGKILL);
			job->group_killed = true;
			job->close_deadline = now + CLOSE_GRACE_MS;
		}

		if (job->group_killed && now >= job->close_deadline &&
			(job->out[0].fd >= 0 || job->out[1].fd >= 0))
		{
			runner_log("%s: output pipes still open after the command "
					   "ended; closing them", job_label(job));
			if (job->out[0].fd >= 0)
				read_stream(job, &job->out[0], true);
			if (job->out[1].fd >= 0)
				read_stream(job, &job->out[1], true);
		}

		if (job->drop && job_process_done(job) &&
			!(inflight.kind != REQ_NONE && inflight.slot == i))
			free_job(job);
	}
}

/*
 * Returns the number of job slots in use.
 */
static int
jobs_in_use(void)
{
	int			i;
	int			n = 0;

	for (i = 0; i < max_jobs; i++)
		if (jobs[i].in_use)
			n++;
	return n;
}


/* ---------------------------------------------------------------------
 * Database connection
 * ---------------------------------------------------------------------
 */

/*
 * Routes notices and asynchronous errors from the server (such as the
 * FATAL message sent before a terminated connection closes) through the
 * runner's own diagnostics instead of libpq's default stderr output.
 */
static void
notice_processor(void *arg, const char *message)
{
	(void) arg;
	runner_log("server message: %s", message);
}

/*
 * Builds the keyword/value arrays for connecting: defaults first, then
 * the user's -d string (expanded by libpq) so that it can override them.
 */
static void
connect_params(const char **keywords, const char **values)
{
	int			n = 0;

	keywords[n] = "fallback_application_name";
	values[n++] = RUNNER_NAME;
	keywords[n] = "client_encoding";
	values[n++] = "UTF8";
	keywords[n] = "keepalives_idle";
	values[n++] = "30";
	keywords[n] = "keepalives_interval";
	values[n++] = "10";
	keywords[n] = "keepalives_count";
	values[n++] = "3";
	if (conninfo)
	{
		keywords[n] = "dbname";
		values[n++] = conninfo;
	}
	keywords[n] = NULL;
	values[n] = NULL;
}

/*
 * Prepares a newly established connection for use: non-blocking mode,
 * LISTEN to be (re)issued, every lease to be checked at once and a claim
 * to be attempted.
 */
static void
conn_ready(bool first)
{
	int64		now = now_ms();
	int			i;

	PQsetNoticeProcessor(conn, notice_processor, NULL);
	if (PQsetnonblocking(conn, 1) != 0)
		runner_log("could not make the connection non-blocking: %s",
				   PQerrorMessage(conn));
	conn_state = CONN_READY;
	flush_pending = false;
	memset(&inflight, 0, sizeof(inflight));
	listen_state = LISTEN_NEEDED;
	backoff_ms = RECONNECT_MIN_MS;
	next_claim_at = now;
	for (i = 0; i < max_jobs; i++)
		if (jobs[i].in_use && !jobs[i].drop)
			jobs[i].next_heartbeat = now;
	if (!first)
		runner_log("reconnected to the database");
	else if (verbose)
		runner_log("connected to database \"%s\" as worker \"%s\"",
				   PQdb(conn), worker_name);
}

/*
 * Drops the connection after a failure and schedules a reconnection.
 * Nothing queued is lost: output, completions and heartbeats are simply
 * retried on the next connection.
 */
static void
conn_lost(const char *fmt,...)
{
	char		msg[1024];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clean_message(msg);

	runner_log("database connection lost: %s; reconnecting in %d s",
			   msg, (int) (backoff_ms / 1000));
	PQfinish(conn);
	conn = NULL;
	conn_state = CONN_DOWN;
	flush_pending = false;
	memset(&inflight, 0, sizeof(inflight));
	reconnect_at = now_ms() + backoff_ms;
}

/*
 * Records a failed reconnection attempt and backs off.
 */
static void
connect_failed(const char *why)
{
	char		msg[1024];

	snprintf(msg, sizeof(msg), "%s", why);
	clean_message(msg);
	backoff_ms *= 2;
	if (backoff_ms > RECONNECT_MAX_MS)
		backoff_ms = RECONNECT_MAX_MS;
	runner_log("could not reconnect to the database: %s; retrying in %d s",
			   msg, (int) (backoff_ms / 1000));
	PQfinish(conn);
	conn = NULL;
	conn_state = CONN_DOWN;
	reconnect_at = now_ms() + backoff_ms;
}

/*
 * Starts an asynchronous reconnection attempt.
 */
static void
start_reconnect(void)
{
	const char *keywords[8];
	const char *values[8];

	connect_params(keywords, values);
	conn = PQconnectStartParams(keywords, values, 1);
	if (conn == NULL)
	{
		connect_failed("out of memory");
		return;
	}
	if (PQstatus(conn) == CONNECTION_BAD)
	{
		connect_failed(PQerrorMessage(conn));
		return;
	}
	conn_state = CONN_CONNECTING;
	connect_status = PGRES_POLLING_WRITING;
	connect_started = now_ms();
}

/*
 * Advances an asynchronous connection attempt after its socket became
 * ready.
 */
static void
continue_connect(void)
{
	connect_status = PQconnectPoll(conn);
	if (connect_status == PGRES_POLLING_OK)
		conn_ready(false);
	else if (connect_status == PGRES_POLLING_FAILED)
		connect_failed(PQerrorMessage(conn));
}

/*
 * Returns true if a failed result means the connection itself is gone
 * (rather than the query failing), so the work must be retried after
 * reconnecting.
 */
static bool
is_connection_failure(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (PQstatus(conn) == CONNECTION_BAD || state == NULL)
		return true;
	return strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0;
}

/*
 * Returns the primary message of a failed result followed by its
 * SQLSTATE, in a static buffer, for one-line diagnostics.
 */
static const char *
result_error(const PGresult *res)
{
	static char buf[1024];
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (msg == NULL)
		snprintf(buf, sizeof(buf), "%s", PQresultErrorMessage(res));
	else
		snprintf(buf, sizeof(buf), "%s (SQLSTATE %s)", msg,
				 state ? state : "?????");
	clean_message(buf);
	return buf;
}

/*
 * Returns the SQLSTATE of a failed result, or "" if it has none.
 */
static const char *
result_sqlstate(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state ? state : "";
}

/*
 * Sends one query with text parameters, making it the request in
 * flight.
 */
static void
send_query(RequestKind kind, int slot, const char *sql, int nparams,
		   const char *const *values)
{
	int			r;

	if (!PQsendQueryParams(conn, sql, nparams, NULL, values, NULL, NULL, 0))
	{
		conn_lost("could not send query: %s", PQerrorMessage(conn));
		return;
	}
	memset(&inflight, 0, sizeof(inflight));
	inflight.kind = kind;
	inflight.slot = slot;
	inflight.generation = slot >= 0 ? jobs[slot].generation : 0;
	inflight.sent_at = now_ms();
	r = PQflush(conn);
	if (r < 0)
		conn_lost("could not send query: %s", PQerrorMessage(conn));
	else
		flush_pending = (r == 1);
}


/* ---------------------------------------------------------------------
 * Requests and their results
 * ---------------------------------------------------------------------
 */

/*
 * Asks the server for the LISTEN channel of every queue.
 */
static void
send_channels_query(void)
{
	const char *values[1] = {queues_literal};

	send_query(REQ_CHANNELS, -1,
			   "SELECT stellapack.queue_channel(q) "
			   "FROM unnest($1::text[]) WITH ORDINALITY AS u(q, n) "
			   "ORDER BY n", 1, values);
}

/*
 * Issues LISTEN for every queue channel in one round trip.
 */
static void
send_listen(void)
{
	StrBuf		sql = {0};
	int			i;

	for (i = 0; i < nqueues; i++)
	{
		char	   *ident = PQescapeIdentifier(conn, channels[i],
											   strlen(channels[i]));

		if (ident == NULL)
		{
			runner_log("could not quote channel name \"%s\": %s",
					   channels[i], PQerrorMessage(conn));
			listen_state = LISTEN_RETRY;
			listen_retry_at = now_ms() + LISTEN_RETRY_MS;
			sb_free(&sql);
			return;
		}
		sb_appends(&sql, "LISTEN ");
		sb_appends(&sql, ident);
		sb_appends(&sql, ";");
		PQfreemem(ident);
	}
	if (!PQsendQuery(conn, sql.data))
		conn_lost("could not send LISTEN: %s", PQerrorMessage(conn));
	else
	{
		int			r;

		memset(&inflight, 0, sizeof(inflight));
		inflight.kind = REQ_LISTEN;
		inflight.slot = -1;
		inflight.sent_at = now_ms();
		r = PQflush(conn);
		if (r < 0)
			conn_lost("could not send LISTEN: %s", PQerrorMessage(conn));
		else
			flush_pending = (r == 1);
	}
	sb_free(&sql);
}

/*
 * Asks for as many jobs as there are free slots.
 */
static void
send_claim(int free_slots)
{
	char		njobs[16];
	const char *values[4];

	snprintf(njobs, sizeof(njobs), "%d", free_slots);
	values[0] = worker_name;
	values[1] = queues_literal;
	values[2] = lease_text;
	values[3] = njobs;
	send_query(REQ_CLAIM, -1,
			   "SELECT * FROM stellapack.job_claim(worker => $1, "
			   "queues => $2::text[], lease => $3::interval, "
			   "max_jobs => $4)", 4, values);
	if (inflight.kind == REQ_CLAIM)
		inflight.count = free_slots;
	notified_during_claim = false;
}

/*
 * Sends a heartbeat for one job's lease.
 */
static void
send_heartbeat(int slot)
{
	const char *values[1] = {jobs[slot].lease_id};

	send_query(REQ_HEARTBEAT, slot,
			   "SELECT stellapack.job_heartbeat(lease_id => $1)", 1, values);
}

/*
 * Sends the oldest queued lines of one job, up to BATCH_MAX_LINES lines
 * or BATCH_MAX_BYTES bytes, in one append call.
 */
static void
send_log_batch(int slot)
{
	Job		   *job = &jobs[slot];
	StrBuf		messages = {0};
	StrBuf		streams = {0};
	StrBuf		levels = {0};
	const char *values[5];
	char		first[32];
	LogLine    *line;
	int			n = 0;

	sb_appendc(&messages, '{');
	sb_appendc(&streams, '{');
	sb_appendc(&levels, '{');
	for (line = job->log_head; line && n < BATCH_MAX_LINES; line = line->next)
	{
		if (n > 0 && messages.len + line->len > BATCH_MAX_BYTES)
			break;
		if (n > 0)
		{
			sb_appendc(&messages, ',');
			sb_appendc(&streams, ',');
			sb_appendc(&levels, ',');
		}
		append_array_element(&messages, line->text, line->len);
		sb_appends(&streams, line->stream);
		sb_appends(&levels, line->level);
		n++;
	}
	sb_appendc(&messages, '}');
	sb_appendc(&streams, '}');
	sb_appendc(&levels, '}');

	values[0] = job->lease_id;
	values[1] = messages.data;
	values[2] = streams.data;
	values[3] = levels.data;
	snprintf(first, sizeof(first), "%lld", (long long) job->lines_appended);
	values[4] = first;

	/*
	 * first_line numbers the batch, so that a batch sent again after a
	 * lost connection (whose commit may have gone through) is stored once
	 */
#define LOG_APPEND_SQL \
	"SELECT stellapack.pack_run_log_append_many(lease_id => $1, " \
	"messages => $2::text[], streams => $3::text[], levels => $4::text[]"
	send_query(REQ_LOG, slot,
			   log_first_line ? LOG_APPEND_SQL ", first_line => $5::bigint)" :
			   LOG_APPEND_SQL ")",
			   log_first_line ? 5 : 4, values);
#undef LOG_APPEND_SQL
	if (inflight.kind == REQ_LOG)
		inflight.count = n;
	sb_free(&messages);
	sb_free(&streams);
	sb_free(&levels);
}

/*
 * Reports the outcome of a finished job with job_complete().
 */
static void
send_complete(int slot)
{
	Job		   *job = &jobs[slot];
	json_t	   *result = NULL;
	char	   *result_text = NULL;
	char	   *error = NULL;
	const char *values[4];
	bool		succeeded = false;
	int64		duration;
	int			free_slots;
	bool		claims;
	char		njobs[16];

	duration = (job->reaped ? job->ended_at : now_ms()) - job->started_at;
	if (job->pid > 0 && job->reaped)
	{
		int			st = job->wait_status;

		if (WIFEXITED(st))
			result = json_pack("{s:i, s:I}", "exit_code", WEXITSTATUS(st),
							   "duration_ms", (json_int_t) duration);
		else if (WIFSIGNALED(st))
			result = json_pack("{s:i, s:s, s:I}", "signal", WTERMSIG(st),
							   "signal_name", signal_name(WTERMSIG(st)),
							   "duration_ms", (json_int_t) duration);

		if (job->fail_error)
			error = xstrdup(job->fail_error);
		else if (job->kill_reason == KILL_TIMEOUT)
			error = xasprintf("command timed out after %s",
							  job->timeout_text);
		else if (job->kill_reason == KILL_STOPPED)
			error = xstrdup("runner stopped");
		else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			succeeded = true;
		else if (WIFEXITED(st))
			error = xasprintf("command exited with code %d",
							  WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			error = xasprintf("command killed by signal %d", WTERMSIG(st));
		else
			error = xasprintf("command ended with wait status %d", st);
	}
	else
		error = xstrdup(job->fail_error ? job->fail_error :
						"command was not started");

	if (result)
	{
		result_text = json_dumps(result, JSON_COMPACT);
		json_decref(result);
	}

	/*
	 * When the runner would claim now anyway, the next jobs come with the
	 * completion: one call and one commit instead of two.
	 */
	free_slots = max_jobs - jobs_in_use() + 1;
	claims = complete_and_claim && stop_requests == 0 &&
		now_ms() >= next_claim_at && listen_state != LISTEN_NEEDED;
	values[0] = job->lease_id;
	values[1] = succeeded ? "true" : "false";
	values[2] = result_text;
	values[3] = error;
	if (claims)
	{
		const char *cvalues[8];

		snprintf(njobs, sizeof(njobs), "%d", free_slots);
		cvalues[0] = values[0];
		cvalues[1] = values[1];
		cvalues[2] = worker_name;
		cvalues[3] = queues_literal;
		cvalues[4] = lease_text;
		cvalues[5] = njobs;
		cvalues[6] = result_text;
		cvalues[7] = error;
		send_query(REQ_COMPLETE, slot,
				   "SELECT * FROM stellapack.job_complete_and_claim("
				   "lease_id => $1, succeeded => $2, worker => $3, "
				   "queues => $4::text[], lease => $5::interval, "
				   "max_jobs => $6, result => $7::jsonb, error => $8)",
				   8, cvalues);
		notified_during_claim = false;
	}
	else
		send_query(REQ_COMPLETE, slot,
				   "SELECT * FROM stellapack.job_complete(lease_id => $1, "
				   "succeeded => $2, result => $3::jsonb, error => $4)",
				   4, values);
	if (inflight.kind == REQ_COMPLETE)
	{
		inflight.claims = claims;
		inflight.count = claims ? free_slots : 0;
		free(job->outcome);
		job->outcome = error ? xasprintf("failed: %s", error) :
			xstrdup("succeeded");
	}
	free(result_text);
	free(error);
}

/*
 * Returns true if a job's queued output should be sent now: a full batch
 * is waiting, the oldest line has waited BATCH_DELAY_MS, or the job is
 * about to be completed.
 */
static bool
log_batch_due(Job *job, int64 now)
{
	if (job->log_count == 0)
		return false;
	return job->log_count >= BATCH_MAX_LINES ||
		job->log_bytes >= BATCH_MAX_BYTES ||
		now - job->log_first_at >= BATCH_DELAY_MS ||
		job_process_done(job) ||
		stop_requests > 1;
}

/*
 * Picks the next query to send, if the connection is idle.  Heartbeats
 * come first so a busy log stream can never cost a lease, then LISTEN
 * setup, completions, output and finally claims.
 */
static void
dispatch(int64 now)
{
	int			i;
	int			best = -1;
	int			free_slots;

	if (conn_state != CONN_READY || inflight.kind != REQ_NONE)
		return;

	for (i = 0; i < max_jobs; i++)
	{
		Job		   *job = &jobs[i];

		if (job->in_use && !job->drop && now >= job->next_heartbeat)
		{
			send_heartbeat(i);
			return;
		}
	}

	if (listen_state == LISTEN_NEEDED ||
		(listen_state == LISTEN_RETRY && now >= listen_retry_at))
	{
		if (channels == NULL)
			send_channels_query();
		else
			send_listen();
		return;
	}

	for (i = 0; i < max_jobs; i++)
	{
		Job		   *job = &jobs[i];

		if (job->in_use && !job->drop && job->log_count == 0 &&
			job_process_done(job) && now >= job->retry_at)
		{
			send_complete(i);
			return;
		}
	}

	for (i = 0; i < max_jobs; i++)
	{
		Job		   *job = &jobs[i];

		if (job->in_use && !job->drop && log_batch_due(job, now) &&
			(best < 0 || job->log_first_at < jobs[best].log_first_at))
			best = i;
	}
	if (best >= 0)
	{
		send_log_batch(best);
		return;
	}

	free_slots = max_jobs - jobs_in_use();
	if (stop_requests == 0 && free_slots > 0 && now >= next_claim_at &&
		listen_state != LISTEN_NEEDED)
		send_claim(free_slots);
}

/*
 * Handles the answer to the queue_channel() query.
 */
static void
handle_channels(PGresult *res)
{
	int			i;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != nqueues)
	{
		runner_log("could not look up queue channels: %s; polling every "
				   "%d s meanwhile",
				   PQresultStatus(res) == PGRES_TUPLES_OK ?
				   "wrong number of rows" : result_error(res),
				   CLAIM_POLL_MS / 1000);
		listen_state = LISTEN_RETRY;
		listen_retry_at = now_ms() + LISTEN_RETRY_MS;
		return;
	}
	channels = xcalloc(nqueues, sizeof(char *));
	for (i = 0; i < nqueues; i++)
		channels[i] = xstrdup(PQgetvalue(res, i, 0));
}

/*
 * Returns one field of a result row, or NULL if the field is NULL or the
 * column does not exist (col < 0).
 */
static const char *
column_value(const PGresult *res, int row, int col)
{
	if (col < 0 || PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

/*
 * Takes the rows returned by job_claim() into free slots and starts
 * their commands.
 */
static void
handle_claim(PGresult *res)
{
	int			f_lease = PQfnumber(res, "lease_id");
	int			f_jobrun = PQfnumber(res, "job_run_id");
	int			f_run = PQfnumber(res, "run_id");
	int			f_job = PQfnumber(res, "job");
	int			f_spec = PQfnumber(res, "spec");
	int			f_attempt = PQfnumber(res, "attempt");
	int64		now = now_ms();
	int			nrows;
	int			row;

	if (f_lease < 0 || f_spec < 0)
	{
		runner_log("job_claim() returned no lease_id or spec column");
		next_claim_at = now + CLAIM_POLL_MS;
		return;
	}
	nrows = PQntuples(res);
	for (row = 0; row < nrows; row++)
	{
		Job		   *job = NULL;
		int			i;

		for (i = 0; i < max_jobs; i++)
			if (!jobs[i].in_use)
			{
				job = &jobs[i];
				break;
			}
		if (job == NULL)
		{
			runner_log("job_claim() returned more jobs than asked for; "
					   "lease %s will expire",
					   column_value(res, row, f_lease));
			continue;
		}
		memset(job, 0, sizeof(*job));
		job->in_use = true;
		job->generation = next_generation++;
		job->out[0].fd = job->out[1].fd = -1;
		job->out[0].name = "stdout";
		job->out[1].name = "stderr";
		job->lease_id = xstrdup(column_value(res, row, f_lease));
		job->job_run_id = xstrdup(column_value(res, row, f_jobrun));
		job->run_id = xstrdup(column_value(res, row, f_run));
		job->name = xstrdup(column_value(res, row, f_job));
		job->attempt = xstrdup(column_value(res, row, f_attempt));
		job->next_heartbeat = now + lease_ms / 3;
		if (verbose)
			runner_log("%s: claimed, attempt %s, lease %s", job_label(job),
					   job->attempt ? job->attempt : "?", job->lease_id);
		start_job(job, column_value(res, row, f_spec));
	}

	if (nrows < inflight.count && !notified_during_claim)
		next_claim_at = now + CLAIM_POLL_MS;
	else
		next_claim_at = now;
}

/*
 * Handles the result of the request in flight.  A result showing that
 * the connection broke drops the connection; the work it carried is
 * redone after reconnecting.
 */
static void
handle_result(PGresult *res)
{
	ExecStatusType status = PQresultStatus(res);
	bool		ok = (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK);
	Job		   *job = NULL;

	if (!ok && is_connection_failure(res))
	{
		conn_lost("%s", result_error(res));
		return;
	}
	if (inflight.failed)
		return;					/* only the first error of LISTEN counts */

	if (inflight.slot >= 0)
	{
		job = &jobs[inflight.slot];
		if (!job->in_use || job->generation != inflight.generation)
			return;
	}

	switch (inflight.kind)
	{
		case REQ_CHANNELS:
			handle_channels(res);
			break;

		case REQ_LISTEN:
			if (!ok)
			{
				inflight.failed = true;
				runner_log("could not LISTEN for new jobs: %s; polling "
						   "every %d s meanwhile",
						   result_error(res), CLAIM_POLL_MS / 1000);
			}
			break;

		case REQ_CLAIM:
			if (ok)
				handle_claim(res);
			else
			{
				runner_log("could not claim jobs: %s",
						   result_error(res));
				next_claim_at = now_ms() + CLAIM_POLL_MS;
				claim_backoff_until = next_claim_at;
			}
			break;

		case REQ_HEARTBEAT:
			if (ok)
				job->next_heartbeat = now_ms() + lease_ms / 3;
			else if (strcmp(result_sqlstate(res), SQLSTATE_RUN_CANCELED) == 0)
				abandon_job(job, KILL_CANCELED, NULL);
			else
				abandon_job(job, KILL_LEASE_LOST, result_error(res));
			break;

		case REQ_LOG:
			if (ok)
			{
				consume_log(job, inflight.count);
				job->lines_appended += inflight.count;
			}
			else if (log_first_line &&
					 strcmp(result_sqlstate(res), "42883") == 0)
			{
				/* an older stellapack: the batch goes again without it */
				runner_log("the server's pack_run_log_append_many() has no "
						   "first_line; a batch sent again after a lost "
						   "connection may be stored twice");
				log_first_line = false;
			}
			else if (strcmp(result_sqlstate(res), SQLSTATE_RUN_CANCELED) == 0)
				abandon_job(job, KILL_CANCELED, NULL);
			else if (strcmp(result_sqlstate(res), "55000") == 0 ||
					 strcmp(result_sqlstate(res), "P0002") == 0)
				abandon_job(job, KILL_LEASE_LOST, result_error(res));
			else
			{
				runner_log("%s: could not append %d line(s) of output, "
						   "dropping them: %s", job_label(job),
						   inflight.count, result_error(res));
				consume_log(job, inflight.count);
			}
			break;

		case REQ_COMPLETE:
			if (ok)
			{
				if (verbose)
					runner_log("%s: completed, %s", job_label(job),
							   job->outcome);
				free_job(job);
				if (inflight.claims)
					handle_claim(res);
			}
			else if (inflight.claims &&
					 strcmp(result_sqlstate(res), "42883") == 0)
			{
				/* an older stellapack: complete, then claim, as before */
				runner_log("the server has no job_complete_and_claim(); "
						   "completing and claiming in separate calls");
				complete_and_claim = false;
				job->retry_at = now_ms();
			}
			else if (strncmp(result_sqlstate(res), "40", 2) == 0)
			{
				runner_log("%s: could not complete, will retry: %s",
						   job_label(job), result_error(res));
				job->retry_at = now_ms() + RETRY_DELAY_MS;
			}
			else
			{
				runner_log("%s: completion refused: %s", job_label(job),
						   result_error(res));
				free_job(job);
			}
			break;

		case REQ_NONE:
			break;
	}
}

/*
 * Called when the request in flight has returned all of its results.
 */
static void
finish_request(void)
{
	if (inflight.kind == REQ_CHANNELS)
	{
		if (channels != NULL)
			listen_state = LISTEN_NEEDED;	/* now send LISTEN itself */
	}
	else if (inflight.kind == REQ_LISTEN)
	{
		if (inflight.failed)
		{
			listen_state = LISTEN_RETRY;
			listen_retry_at = now_ms() + LISTEN_RETRY_MS;
		}
		else
		{
			listen_state = LISTEN_DONE;
			next_claim_at = now_ms();
		}
	}
	memset(&inflight, 0, sizeof(inflight));
}

/*
 * Services the connection after poll() reported activity on it: sends
 * what is still buffered, reads input, handles finished results and
 * notifications.
 */
static void
service_connection(short revents)
{
	PGnotify   *notify;
	bool		notified = false;

	if (revents & (POLLIN | POLLERR | POLLHUP))
	{
		if (!PQconsumeInput(conn))
		{
			conn_lost("%s", PQerrorMessage(conn));
			return;
		}
	}
	if (flush_pending)
	{
		int			r = PQflush(conn);

		if (r < 0)
		{
			conn_lost("%s", PQerrorMessage(conn));
			return;
		}
		flush_pending = (r == 1);
	}

	while (conn != NULL && inflight.kind != REQ_NONE && !PQisBusy(conn))
	{
		PGresult   *res = PQgetResult(conn);

		if (res == NULL)
		{
			finish_request();
			break;
		}
		handle_result(res);
		PQclear(res);
	}
	if (conn == NULL)
		return;

	while ((notify = PQnotifies(conn)) != NULL)
	{
		notified = true;
		PQfreemem(notify);
	}
	if (notified && stop_requests == 0)
	{
		int64		now = now_ms();

		next_claim_at = now > claim_backoff_until ? now : claim_backoff_until;
		if (inflight.kind == REQ_CLAIM)
			notified_during_claim = true;
	}

	if (PQstatus(conn) == CONNECTION_BAD)
		conn_lost("%s", PQerrorMessage(conn));
	else if (inflight.kind != REQ_NONE && (revents & (POLLERR | POLLHUP)) &&
			 !(revents & POLLIN))
		conn_lost("socket error");
}


/* ---------------------------------------------------------------------
 * Signals, options and the main loop
 * ---------------------------------------------------------------------
 */

/*
 * Reacts to SIGTERM or SIGINT.  The first stops claiming and lets the
 * running commands finish; the second kills them and completes them as
 * failed; a third exits at once without completing anything.
 */
static void
handle_stop_signal(int sig)
{
	int			i;

	stop_requests++;
	if (stop_requests == 1)
	{
		runner_log("received %s; no new jobs will be claimed, waiting for "
				   "%d running job(s) to finish", signal_name(sig),
				   jobs_in_use());
		return;
	}
	if (stop_requests == 2)
	{
		runner_log("received %s again; killing %d running job(s)",
				   signal_name(sig), jobs_in_use());
		for (i = 0; i < max_jobs; i++)
		{
			Job		   *job = &jobs[i];

			if (job->in_use && job->pid > 0 && !job->reaped &&
				job->kill_reason == KILL_NONE)
			{
				job_note(job, "error", "runner stopped; killing the "
						 "command's process group");
				kill_job(job, KILL_STOPPED);
			}
		}
		return;
	}
	runner_log("received %s a third time; exiting without completing "
			   "running jobs", signal_name(sig));
	for (i = 0; i < max_jobs; i++)
		if (jobs[i].in_use)
			kill_job_now(&jobs[i]);
	exit(1);
}

/*
 * Reads every pending signal from the signalfd.
 */
static void
read_signals(void)
{
	struct signalfd_siginfo si;
	bool		child = false;

	for (;;)
	{
		ssize_t		n = read(sigfd, &si, sizeof(si));

		if (n != (ssize_t) sizeof(si))
			break;
		if (si.ssi_signo == SIGCHLD)
			child = true;
		else
			handle_stop_signal((int) si.ssi_signo);
	}
	if (child)
		reap_children();
}

/*
 * Prints the usage message.
 */
static void
usage(FILE *out)
{
	fprintf(out,
			RUNNER_NAME " claims stellapack jobs and runs their commands.\n"
			"\n"
			"Usage:\n"
			"  " RUNNER_NAME " --queue NAME [--queue NAME ...] [OPTION]...\n"
			"\n"
			"Options:\n"
			"  -q, --queue=NAME         claim jobs from this queue "
			"(repeatable, required)\n"
			"  -j, --jobs=N             run up to N jobs at once "
			"(default 1)\n"
			"  -w, --worker-name=NAME   name reported to the server "
			"(default host:pid)\n"
			"  -l, --lease=SECONDS      lease length in seconds, or a "
			"duration like 2m\n"
			"                           (default 30)\n"
			"  -d, --dbname=CONNINFO    database name or connection string\n"
			"  -v, --verbose            report every claim and completion\n"
			"  -h, --help               show this help, then exit\n"
			"\n"
			"Connection settings also come from the usual PG* environment "
			"variables.\n"
			"SIGTERM or SIGINT stops claiming and waits for running jobs; "
			"a second one\n"
			"kills them.  See docs/runner.md for details.\n");
}

/*
 * Parses the command line, exiting with status 1 on a bad option.
 */
static void
parse_options(int argc, char **argv)
{
	static const struct option long_options[] = {
		{"queue", required_argument, NULL, 'q'},
		{"jobs", required_argument, NULL, 'j'},
		{"worker-name", required_argument, NULL, 'w'},
		{"lease", required_argument, NULL, 'l'},
		{"dbname", required_argument, NULL, 'd'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	int			c;
	char	   *end;
	long		n;
	const char *why;

	while ((c = getopt_long(argc, argv, "q:j:w:l:d:vh", long_options,
							NULL)) != -1)
	{
		switch (c)
		{
			case 'q':
				if (optarg[0] == '\0')
				{
					fprintf(stderr, RUNNER_NAME ": queue name must not be "
							"empty\n");
					exit(1);
				}
				queues = realloc(queues, (nqueues + 1) * sizeof(char *));
				if (queues == NULL)
					out_of_memory();
				queues[nqueues++] = xstrdup(optarg);
				break;
			case 'j':
				errno = 0;
				n = strtol(optarg, &end, 10);
				if (errno || *end || end == optarg || n < 1 || n > MAX_JOBS)
				{
					fprintf(stderr, RUNNER_NAME ": --jobs must be an integer "
							"between 1 and %d\n", MAX_JOBS);
					exit(1);
				}
				max_jobs = (int) n;
				break;
			case 'w':
				if (optarg[0] == '\0' || strlen(optarg) > 200)
				{
					fprintf(stderr, RUNNER_NAME ": worker name must be 1 to "
							"200 characters\n");
					exit(1);
				}
				free(worker_name);
				worker_name = xstrdup(optarg);
				break;
			case 'l':
				errno = 0;
				n = strtol(optarg, &end, 10);
				if (!errno && *end == '\0' && end != optarg)
					lease_ms = (n > 0 && n <= 86400) ? (int64) n * 1000 : 0;
				else if ((why = parse_duration(optarg, &lease_ms)) != NULL)
				{
					fprintf(stderr, RUNNER_NAME ": --lease %s\n", why);
					exit(1);
				}
				if (lease_ms < 1000 || lease_ms > 86400 * 1000)
				{
					fprintf(stderr, RUNNER_NAME ": --lease must be from one "
							"second to one day\n");
					exit(1);
				}
				break;
			case 'd':
				free(conninfo);
				conninfo = xstrdup(optarg);
				break;
			case 'v':
				verbose = true;
				break;
			case 'h':
				usage(stdout);
				exit(0);
			default:
				fprintf(stderr, "Try \"" RUNNER_NAME " --help\" for more "
						"information.\n");
				exit(1);
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, RUNNER_NAME ": unexpected argument \"%s\"\n",
				argv[optind]);
		fprintf(stderr, "Try \"" RUNNER_NAME " --help\" for more "
				"information.\n");
		exit(1);
	}
	if (nqueues == 0)
	{
		fprintf(stderr, RUNNER_NAME ": at least one --queue is required\n");
		fprintf(stderr, "Try \"" RUNNER_NAME " --help\" for more "
				"information.\n");
		exit(1);
	}
	if (worker_name == NULL)
	{
		char		host[256];

		if (gethostname(host, sizeof(host)) < 0)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		worker_name = xasprintf("%s:%d", host, (int) getpid());
	}
}

/*
 * Returns the earlier of a and b, ignoring zero (meaning "no timer").
 */
static int64
earliest(int64 a, int64 b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

/*
 * Returns the instant at which the loop must wake up even if nothing
 * happens on any descriptor.
 */
static int64
next_wakeup(int64 now)
{
	int64		t = now + CLAIM_POLL_MS;
	int			i;

	if (conn_state == CONN_DOWN)
		t = earliest(t, reconnect_at);
	else if (conn_state == CONN_CONNECTING)
		t = earliest(t, connect_started + CONNECT_TIMEOUT_MS);
	else if (inflight.kind != REQ_NONE)
		t = earliest(t, inflight.sent_at + REQUEST_TIMEOUT_MS);
	else
	{
		if (stop_requests == 0 && jobs_in_use() < max_jobs)
			t = earliest(t, next_claim_at);
		if (listen_state == LISTEN_RETRY)
			t = earliest(t, listen_retry_at);
	}

	for (i = 0; i < max_jobs; i++)
	{
		Job		   *job = &jobs[i];

		if (!job->in_use)
			continue;
		if (!job->drop)
		{
			t = earliest(t, job->next_heartbeat);
			if (job->log_count > 0)
				t = earliest(t, job->log_first_at + BATCH_DELAY_MS);
			if (job->retry_at)
				t = earliest(t, job->retry_at);
		}
		if (job->pid > 0 && !job->reaped)
		{
			if (job->kill_reason == KILL_NONE)
				t = earliest(t, job->deadline);
			t = earliest(t, job->kill_at);
		}
		if (job->pid > 0 && job->reaped && !job->group_killed)
			t = earliest(t, job->drain_deadline);
		if (job->group_killed &&
			(job->out[0].fd >= 0 || job->out[1].fd >= 0))
			t = earliest(t, job->close_deadline);
		if (job->drop && job_process_done(job))
			t = now;
	}
	return t;
}

/*
 * Returns true if the runner should stop reading a job's pipes for now
 * because too much of its output is waiting for the database.  While the
 * database is unreachable the pipes are read anyway so that the command
 * keeps running; the memory bound then drops lines instead.
 */
static bool
backpressured(Job *job)
{
	if (conn_state != CONN_READY)
		return false;
	return job->log_bytes >= BACKPRESSURE_BYTES ||
		job->log_count >= BACKPRESSURE_LINES;
}

/*
 * Releases everything still held, so that leak checkers see a clean
 * exit.
 */
static void
cleanup(void)
{
	int			i;

	for (i = 0; i < max_jobs; i++)
		if (jobs[i].in_use)
			free_job(&jobs[i]);
	free(jobs);
	if (channels)
		for (i = 0; i < nqueues; i++)
			free(channels[i]);
	free(channels);
	for (i = 0; i < nqueues; i++)
		free(queues[i]);
	free(queues);
	free(queues_literal);
	free(worker_name);
	free(conninfo);
	sb_free(&scratch);
	if (conn)
		PQfinish(conn);
	if (sigfd >= 0)
		close(sigfd);
}

/*
 * Entry point: parses options, connects, then runs the event loop until
 * a requested stop has drained every job.
 */
int
main(int argc, char **argv)
{
	const char *keywords[8];
	const char *values[8];
	struct pollfd *pfds;
	int		   *pfd_job;
	sigset_t	mask;
	StrBuf		lit = {0};
	int			i;

	parse_options(argc, argv);

	sb_appendc(&lit, '{');
	for (i = 0; i < nqueues; i++)
	{
		if (i > 0)
			sb_appendc(&lit, ',');
		append_array_element(&lit, queues[i], strlen(queues[i]));
	}
	sb_appendc(&lit, '}');
	queues_literal = lit.data;
	snprintf(lease_text, sizeof(lease_text), "%lld milliseconds",
			 (long long) lease_ms);

	/*
	 * A closed stderr must not kill the runner; children get SIG_DFL
	 * back.  The stop signals are reset in case the runner was started
	 * with them ignored, which would hide them from the signalfd.
	 */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
		(sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
	{
		runner_log("could not set up signal handling: %s", strerror(errno));
		return 1;
	}

	jobs = xcalloc(max_jobs, sizeof(Job));
	for (i = 0; i < max_jobs; i++)
		jobs[i].out[0].fd = jobs[i].out[1].fd = -1;
	pfds = xcalloc(2 + 2 * max_jobs, sizeof(struct pollfd));
	pfd_job = xcalloc(2 + 2 * max_jobs, sizeof(int));

	connect_params(keywords, values);
	conn = PQconnectdbParams(keywords, values, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		runner_log("could not connect to the database: %s",
				   conn ? PQerrorMessage(conn) : "out of memory");
		free(pfds);
		free(pfd_job);
		cleanup();
		return 1;
	}
	conn_ready(true);
	runner_log("started as worker \"%s\", queue(s) %s, up to %d job(s), "
			   "lease %lld ms", worker_name, queues_literal, max_jobs,
			   (long long) lease_ms);

	for (;;)
	{
		int64		now = now_ms();
		int64		wake;
		int			npfd = 0;
		int			conn_pfd = -1;
		int			timeout;
		int			rc;

		/* timers */
		if (conn_state == CONN_DOWN && now >= reconnect_at)
			start_reconnect();
		if (conn_state == CONN_CONNECTING && PQsocket(conn) < 0)
			continue_connect();
		if (conn_state == CONN_CONNECTING &&
			now - connect_started >= CONNECT_TIMEOUT_MS)
			connect_failed("timeout while connecting");
		if (conn_state == CONN_READY && inflight.kind != REQ_NONE &&
			now - inflight.sent_at >= REQUEST_TIMEOUT_MS)
			conn_lost("no answer to a query for %d s",
					  REQUEST_TIMEOUT_MS / 1000);
		advance_jobs(now);
		dispatch(now);

		if (stop_requests > 0 && jobs_in_use() == 0 &&
			inflight.kind == REQ_NONE)
			break;

		/* descriptors */
		pfds[npfd].fd = sigfd;
		pfds[npfd].events = POLLIN;
		pfd_job[npfd++] = -1;
		if (conn_state == CONN_READY)
		{
			conn_pfd = npfd;
			pfds[npfd].fd = PQsocket(conn);
			pfds[npfd].events = POLLIN | (flush_pending ? POLLOUT : 0);
			pfd_job[npfd++] = -1;
		}
		else if (conn_state == CONN_CONNECTING)
		{
			conn_pfd = npfd;
			pfds[npfd].fd = PQsocket(conn);
			pfds[npfd].events =
				connect_status == PGRES_POLLING_READING ? POLLIN : POLLOUT;
			pfd_job[npfd++] = -1;
		}
		for (i = 0; i < max_jobs; i++)
		{
			Job		   *job = &jobs[i];
			int			s;

			if (!job->in_use || backpressured(job))
				continue;
			for (s = 0; s < 2; s++)
				if (job->out[s].fd >= 0)
				{
					pfds[npfd].fd = job->out[s].fd;
					pfds[npfd].events = POLLIN;
					pfd_job[npfd++] = i * 2 + s;
				}
		}

		now = now_ms();
		wake = next_wakeup(now);
		timeout = wake <= now ? 0 : (int) (wake - now);
		rc = poll(pfds, npfd, timeout);
		if (rc < 0)
		{
			if (errno == EINTR)
				continue;
			runner_log("poll failed: %s", strerror(errno));
			break;
		}

		/* output first, so that lines read now go out before completion */
		for (i = 0; i < npfd; i++)
		{
			if (pfd_job[i] >= 0 && pfds[i].revents)
			{
				Job		   *job = &jobs[pfd_job[i] / 2];
				OutStream  *os = &job->out[pfd_job[i] % 2];

				if (os->fd == pfds[i].fd)
					read_stream(job, os, false);
			}
		}
		if (pfds[0].revents)
			read_signals();
		if (conn_pfd >= 0 && pfds[conn_pfd].revents)
		{
			if (conn_state == CONN_READY)
				service_connection(pfds[conn_pfd].revents);
			else if (conn_state == CONN_CONNECTING)
				continue_connect();
		}
	}

	runner_log("stopped");
	free(pfds);
	free(pfd_job);
	cleanup();
	return 0;
}
