/*-------------------------------------------------------------------------
 *
 * stellapack.c
 *	  Command-line client for the stellapack extension.
 *
 * This program talks to a database in which the stellapack extension is
 * installed, using nothing but the SQL interface of schema "stellapack".
 * It starts runs of packs, lists them, shows a run with its job runs,
 * waits for runs, cancels them, and prints the log of a run, optionally
 * following it live until the run ends.
 *
 * Following a run combines the log table with LISTEN/NOTIFY on the run's
 * channel: we LISTEN first, then page through the backlog, then print
 * notifications whose sequence number is exactly the next one expected.
 * Whenever a notification is missing, truncated, malformed or out of
 * order we go back to the table, and a periodic re-read of the table
 * guards against notifications that never arrive.  docs/streaming.md
 * describes the protocol and docs/cli.md the user interface.
 *
 * Only libpq, jansson and the C library are used.  Every query returns
 * text, and machine-readable output is produced from JSON the server
 * rendered, so that numbers in user data pass through unchanged.
 *
 * IDENTIFICATION
 *	  src/bin/stellapack.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
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

#include <jansson.h>
#include <libpq-fe.h>

#ifndef STELLAPACK_VERSION
#define STELLAPACK_VERSION "0.1"
#endif

#define SP_NORETURN __attribute__((noreturn))
#define SP_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Exit statuses, see docs/cli.md. */
#define EXIT_OK				0	/* success; a followed run completed */
#define EXIT_RUN_NOT_OK		1	/* the run ended but did not complete */
#define EXIT_TROUBLE		2	/* usage, connection or SQL error */
#define EXIT_TIMEOUT		3	/* "wait --timeout" expired */

#define LOG_PAGE_ROWS		1000	/* max_rows for pack_run_logs() */
#define SAFETY_NET_MS		2000	/* re-read the backlog this often */
#define WAIT_CHUNK_SECS		30.0	/* longest single pack_run_wait() */
#define WAIT_MIN_GAP_MS		200		/* pause between quick wait calls */
#define JOB_WIDTH_MAX		24	/* widest job column we pad to */
#define LEVEL_WIDTH			7	/* strlen("warning") */
#define JSON_MAX_DEPTH		256 /* nesting accepted by json_skip_value */
#define DEFAULT_RUNS_LIMIT	"20"

/* SGR parameters of the few colours we use. */
#define SGR_RED				"31"
#define SGR_GREEN			"32"
#define SGR_YELLOW			"33"

/*
 * Definition of one command-line option.  The table of a command ends
 * with an entry whose id is zero.
 */
typedef struct OptDef
{
	const char *long_name;		/* without the leading "--", or NULL */
	char		short_name;		/* single letter, or 0 */
	bool		has_arg;		/* option takes a value */
	int			id;				/* returned by next_arg() */
} OptDef;

/* Option identifiers; zero terminates a table. */
enum
{
	OPT_DBNAME = 1,
	OPT_HELP,
	OPT_VERSION,
	OPT_FOLLOW,
	OPT_JSON,
	OPT_AFTER,
	OPT_INPUT,
	OPT_PACK_VERSION,
	OPT_LIMIT,
	OPT_PACK,
	OPT_STATUS,
	OPT_TIMEOUT
};

#define OPT_END			(-1)
#define OPT_POSITIONAL	(-2)

/* Options every command accepts. */
#define COMMON_OPTS \
	{"dbname", 'd', true, OPT_DBNAME}, \
	{"help", 'h', false, OPT_HELP}

#define END_OPTS {NULL, 0, false, 0}

/*
 * State of the walk over the command line.
 */
typedef struct ArgIter
{
	int			argc;
	char	  **argv;
	int			index;			/* next element of argv to look at */
	const char *bundle;			/* rest of a group like "-fd", or NULL */
	bool		only_positional;	/* "--" seen */
	const char *command;		/* current command, for messages */
} ArgIter;

/*
 * A growable string.
 */
typedef struct StrBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} StrBuf;

/*
 * How results are printed.
 */
typedef struct OutputOpts
{
	bool		json;			/* JSON Lines instead of text */
	int			job_width;		/* width of the job column of log lines */
} OutputOpts;

/*
 * One log line of a run, from the table or from a notification.  The
 * strings belong to the caller; any of them may be NULL.
 */
typedef struct LogLine
{
	const char *run;
	long long	seq;
	const char *ts;
	const char *job;			/* NULL for run-level lines */
	const char *level;
	const char *stream;
	const char *message;
	const char *data;			/* compact JSON text of data */
	const char *event;			/* data->>'event' */
	const char *status;			/* data->>'status' */
} LogLine;

/*
 * What we know about a run before printing its log.
 */
typedef struct RunInfo
{
	char	   *id;				/* canonical text form of the id */
	char	   *status;
	int			job_width;		/* longest job name of the run */
} RunInfo;

/*
 * State of printing, and possibly following, the log of one run.
 */
typedef struct Follower
{
	const char *run_id;			/* canonical text form of the id */
	char	   *channel;		/* LISTEN channel, or NULL */
	long long	last;			/* highest seq printed so far */
	bool		finished;		/* printed the run_finished line */
	char	   *final_status;	/* terminal status, once known */
	OutputOpts *out;
} Follower;

/*
 * A text table; every cell is an owned string, the first row is the
 * header.  colors holds an SGR parameter string or NULL per cell.
 */
typedef struct Table
{
	int			ncols;
	int			nrows;
	int			cap;
	char	  **cells;
	const char **colors;
} Table;

/*
 * A command: its name, its implementation, its help and a summary.
 */
typedef struct Command
{
	const char *name;
	int			(*run) (ArgIter *it);
	void		(*help) (void);
	const char *summary;
} Command;

static const char *progname = "stellapack";
static const char *dbname_opt = NULL;
static PGconn *conn = NULL;
static PGcancel *volatile cancel_handle = NULL;
static volatile sig_atomic_t interrupted = 0;
static bool use_color = false;

static const char *const terminal_statuses[] = {
	"completed", "partially_failed", "failed", "canceled", NULL
};

static const char *const run_statuses[] = {
	"pending", "running", "completed", "partially_failed", "failed",
	"canceled", NULL
};

static void finish_and_exit(int status) SP_NORETURN;
static void fatal(const char *fmt,...) SP_PRINTF(1, 2) SP_NORETURN;
static void usage_error(const ArgIter *it, const char *fmt,...)
			SP_PRINTF(2, 3) SP_NORETURN;
static const Command *find_command(const char *name);
static PGresult *run_query(const char *sql, int nparams,
						   const char *const *params);
static int	cmd_run(ArgIter *it);
static int	cmd_logs(ArgIter *it);
static int	cmd_runs(ArgIter *it);
static int	cmd_show(ArgIter *it);
static int	cmd_wait(ArgIter *it);
static int	cmd_cancel(ArgIter *it);
static int	cmd_help(ArgIter *it);
static void help_run(void);
static void help_logs(void);
static void help_runs(void);
static void help_show(void);
static void help_wait(void);
static void help_cancel(void);
static void help_help(void);
static void help_main(void);

static const Command commands[] = {
	{"run", cmd_run, help_run, "start a run of a pack"},
	{"logs", cmd_logs, help_logs, "print or follow the log of a run"},
	{"runs", cmd_runs, help_runs, "list recent runs"},
	{"show", cmd_show, help_show, "show a run and its job runs"},
	{"wait", cmd_wait, help_wait, "wait until a run ends"},
	{"cancel", cmd_cancel, help_cancel, "cancel a run"},
	{"help", cmd_help, help_help, "show the help of a command"},
	{NULL, NULL, NULL, NULL}
};


/* ----------------------------------------------------------------
 *		Messages, memory and exit
 * ----------------------------------------------------------------
 */

/*
 * Print a message to stderr, prefixed with the program name.
 */
static void SP_PRINTF(1, 2)
report(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * Close the connection, if any, and exit with the given status.
 */
static void
finish_and_exit(int status)
{
	PGcancel   *cancel = cancel_handle;

	cancel_handle = NULL;
	if (cancel != NULL)
		PQfreeCancel(cancel);
	if (conn != NULL)
		PQfinish(conn);
	conn = NULL;
	exit(status);
}

/*
 * Report an error and exit with status 2.
 */
static void
fatal(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	finish_and_exit(EXIT_TROUBLE);
}

/*
 * Report a command-line mistake, point at --help and exit with status 2.
 */
static void
usage_error(const ArgIter *it, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (it != NULL && it->command != NULL)
		fprintf(stderr, "Try \"%s %s --help\" for more information.\n",
				progname, it->command);
	else
		fprintf(stderr, "Try \"%s --help\" for more information.\n",
				progname);
	finish_and_exit(EXIT_TROUBLE);
}

/*
 * Exit quietly if a signal asked us to stop.
 */
static void
check_interrupt(void)
{
	if (interrupted)
		finish_and_exit(128 + (int) interrupted);
}

/*
 * Allocate memory or die.
 */
static void *
xmalloc(size_t size)
{
	void	   *p = malloc(size == 0 ? 1 : size);

	if (p == NULL)
		fatal("out of memory");
	return p;
}

/*
 * Resize memory or die.
 */
static void *
xrealloc(void *old, size_t size)
{
	void	   *p = realloc(old, size == 0 ? 1 : size);

	if (p == NULL)
		fatal("out of memory");
	return p;
}

/*
 * Duplicate a string or die.
 */
static char *
xstrdup(const char *s)
{
	size_t		len = strlen(s);
	char	   *p = xmalloc(len + 1);

	memcpy(p, s, len + 1);
	return p;
}

/*
 * Flush stdout, treating a failed write as fatal.
 */
static void
flush_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		fatal("could not write to standard output: %s", strerror(errno));
}


/* ----------------------------------------------------------------
 *		Growable strings
 * ----------------------------------------------------------------
 */

/*
 * Make sb an empty string.
 */
static void
sb_init(StrBuf *sb)
{
	sb->cap = 256;
	sb->len = 0;
	sb->data = xmalloc(sb->cap);
	sb->data[0] = '\0';
}

/*
 * Make room for "more" further bytes plus a terminating zero.
 */
static void
sb_reserve(StrBuf *sb, size_t more)
{
	if (sb->len + more + 1 <= sb->cap)
		return;
	while (sb->len + more + 1 > sb->cap)
		sb->cap *= 2;
	sb->data = xrealloc(sb->data, sb->cap);
}

/*
 * Append n bytes.
 */
static void
sb_putn(StrBuf *sb, const char *s, size_t n)
{
	sb_reserve(sb, n);
	memcpy(sb->data + sb->len, s, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

/*
 * Append a zero-terminated string.
 */
static void
sb_puts(StrBuf *sb, const char *s)
{
	sb_putn(sb, s, strlen(s));
}

/*
 * Append formatted text.
 */
static void SP_PRINTF(2, 3)
sb_printf(StrBuf *sb, const char *fmt,...)
{
	for (;;)
	{
		va_list		ap;
		size_t		room = sb->cap - sb->len;
		int			n;

		va_start(ap, fmt);
		n = vsnprintf(sb->data + sb->len, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			fatal("could not format text");
		if ((size_t) n < room)
		{
			sb->len += n;
			return;
		}
		sb_reserve(sb, (size_t) n);
	}
}

/*
 * Append s as a JSON string literal, or null if s is NULL.  Bytes from
 * 0x80 up are copied, as the connection's encoding is UTF-8.
 */
static void
sb_put_json_string(StrBuf *sb, const char *s)
{
	const unsigned char *p;

	if (s == NULL)
	{
		sb_puts(sb, "null");
		return;
	}
	sb_putn(sb, "\"", 1);
	for (p = (const unsigned char *) s; *p != '\0'; p++)
	{
		switch (*p)
		{
			case '"':
				sb_puts(sb, "\\\"");
				break;
			case '\\':
				sb_puts(sb, "\\\\");
				break;
			case '\n':
				sb_puts(sb, "\\n");
				break;
			case '\r':
				sb_puts(sb, "\\r");
				break;
			case '\t':
				sb_puts(sb, "\\t");
				break;
			case '\b':
				sb_puts(sb, "\\b");
				break;
			case '\f':
				sb_puts(sb, "\\f");
				break;
			default:
				if (*p < 0x20)
					sb_printf(sb, "\\u%04x", *p);
				else
					sb_putn(sb, (const char *) p, 1);
				break;
		}
	}
	sb_putn(sb, "\"", 1);
}

/*
 * Release the memory of sb.
 */
static void
sb_free(StrBuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}


/* ----------------------------------------------------------------
 *		JSON text scanning
 *
 * jansson decodes numbers into C types, which loses precision and
 * rejects big integers; text we pass through (user data, --input values)
 * is therefore only checked and measured here, never decoded.
 * ----------------------------------------------------------------
 */

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_XDIGIT(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || \
					  ((c) >= 'A' && (c) <= 'F'))

/*
 * Skip JSON whitespace.
 */
static const char *
json_skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/*
 * Skip a JSON string starting at its opening quote; NULL if malformed.
 */
static const char *
json_skip_string(const char *p)
{
	p++;
	for (;;)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)			/* also the end of the text */
			return NULL;
		if (c != '\\')
		{
			p++;
			continue;
		}
		p++;
		if (*p == 'u')
		{
			int			i;

			for (i = 1; i <= 4; i++)
				if (!IS_XDIGIT(p[i]))
					return NULL;
			p += 5;
		}
		else if (*p != '\0' && strchr("\"\\/bfnrt", *p) != NULL)
			p++;
		else
			return NULL;
	}
}

/*
 * Skip a JSON number; NULL if there is none at p.
 */
static const char *
json_skip_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
	{
		while (IS_DIGIT(*p))
			p++;
	}
	else
		return NULL;
	if (*p == '.')
	{
		p++;
		if (!IS_DIGIT(*p))
			return NULL;
		while (IS_DIGIT(*p))
			p++;
	}
	if (*p == 'e' || *p == 'E')
	{
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!IS_DIGIT(*p))
			return NULL;
		while (IS_DIGIT(*p))
			p++;
	}
	return p;
}

/*
 * Skip one JSON value, with any whitespace before it; return the end of
 * the value, or NULL if the text is not valid JSON.
 */
static const char *
json_skip_value(const char *p, int depth)
{
	char		close;

	if (depth > JSON_MAX_DEPTH)
		return NULL;
	p = json_skip_ws(p);
	switch (*p)
	{
		case '"':
			return json_skip_string(p);
		case 't':
			return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
		case 'f':
			return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
		case 'n':
			return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
		case '{':
		case '[':
			break;
		default:
			return json_skip_number(p);
	}

	/* an object or an array */
	close = (*p == '{') ? '}' : ']';
	p = json_skip_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;)
	{
		if (close == '}')
		{
			if (*p != '"' || (p = json_skip_string(p)) == NULL)
				return NULL;
			p = json_skip_ws(p);
			if (*p != ':')
				return NULL;
			p++;
		}
		if ((p = json_skip_value(p, depth + 1)) == NULL)
			return NULL;
		p = json_skip_ws(p);
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p = json_skip_ws(p + 1);
	}
}

/*
 * Tell whether the whole of s is one JSON value, surrounding whitespace
 * allowed.
 */
static bool
json_text_is_value(const char *s)
{
	const char *end = json_skip_value(s, 0);

	return end != NULL && *json_skip_ws(end) == '\0';
}

/*
 * Find the raw text of member "key" of the JSON object text "obj".  Keys
 * are compared in their escaped form, which is fine for plain names.
 */
static bool
json_find_member(const char *obj, const char *key,
				 const char **value, size_t *len)
{
	size_t		keylen = strlen(key);
	const char *p = json_skip_ws(obj);

	if (*p != '{')
		return false;
	p = json_skip_ws(p + 1);
	if (*p == '}')
		return false;
	for (;;)
	{
		const char *kstart = p;
		const char *kend;
		const char *vstart;

		if (*p != '"' || (kend = json_skip_string(p)) == NULL)
			return false;
		p = json_skip_ws(kend);
		if (*p != ':')
			return false;
		vstart = json_skip_ws(p + 1);
		if ((p = json_skip_value(vstart, 1)) == NULL)
			return false;
		if ((size_t) (kend - kstart) == keylen + 2 &&
			memcmp(kstart + 1, key, keylen) == 0)
		{
			*value = vstart;
			*len = p - vstart;
			return true;
		}
		p = json_skip_ws(p);
		if (*p != ',')
			return false;
		p = json_skip_ws(p + 1);
	}
}

/*
 * Return a malloc'd copy of JSON text without whitespace outside strings.
 */
static char *
json_minify(const char *s, size_t len)
{
	char	   *out = xmalloc(len + 1);
	char	   *o = out;
	bool		in_string = false;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (in_string)
		{
			*o++ = c;
			if (c == '\\' && i + 1 < len)
				*o++ = s[++i];
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
		{
			in_string = true;
			*o++ = c;
		}
		else if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			*o++ = c;
	}
	*o = '\0';
	return out;
}


/* ----------------------------------------------------------------
 *		Time and text formatting
 * ----------------------------------------------------------------
 */

/*
 * Tell whether y is a leap year of the Gregorian calendar.
 */
static bool
is_leap_year(long long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/*
 * Count the days from 1970-01-01 to the given date (year 1 or later).
 */
static long long
days_since_epoch(long long y, int month, int day)
{
	static const int before_month[12] = {
		0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334
	};
	long long	leaps_before_y = (y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400;
	long long	leaps_before_1970 = 1969 / 4 - 1969 / 100 + 1969 / 400;
	long long	days;

	days = 365 * (y - 1970) + (leaps_before_y - leaps_before_1970);
	days += before_month[month - 1] + day - 1;
	if (month > 2 && is_leap_year(y))
		days++;
	return days;
}

/*
 * Read exactly n decimal digits at *p into *val, advancing *p.
 */
static bool
read_digits(const char **p, int n, int *val)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (!IS_DIGIT((*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*val = v;
	return true;
}

/*
 * Parse an ISO 8601 timestamp as PostgreSQL and the NOTIFY payloads write
 * it ("2026-12-03T16:20:01.123456+00:00", with "T" or a space, the zone
 * as Z, +HH, +HH:MM or +HH:MM:SS, optional fraction), into seconds since
 * the epoch and microseconds.
 */
static bool
parse_timestamp(const char *s, time_t *secs, int *usec)
{
	const char *p = s;
	int			year,
				month,
				day,
				hour,
				minute,
				second;
	int			frac = 0;
	int			ndigits = 0;
	long		offset = 0;

	if (s == NULL ||
		!read_digits(&p, 4, &year) || *p++ != '-' ||
		!read_digits(&p, 2, &month) || *p++ != '-' ||
		!read_digits(&p, 2, &day))
		return false;
	if (*p != 'T' && *p != ' ')
		return false;
	p++;
	if (!read_digits(&p, 2, &hour) || *p++ != ':' ||
		!read_digits(&p, 2, &minute) || *p++ != ':' ||
		!read_digits(&p, 2, &second))
		return false;
	if (year < 1 || month < 1 || month > 12 || day < 1 || day > 31 ||
		hour > 24 || minute > 59 || second > 60)
		return false;
	if (*p == '.')
	{
		p++;
		while (IS_DIGIT(*p))
		{
			if (ndigits < 6)
			{
				frac = frac * 10 + (*p - '0');
				ndigits++;
			}
			p++;
		}
		while (ndigits < 6)
		{
			frac *= 10;
			ndigits++;
		}
	}
	if (*p == 'Z')
		p++;
	else if (*p == '+' || *p == '-')
	{
		int			sign = (*p == '-') ? -1 : 1;
		int			oh,
					om = 0,
					os = 0;

		p++;
		if (!read_digits(&p, 2, &oh))
			return false;
		if (*p == ':' || IS_DIGIT(*p))
		{
			if (*p == ':')
				p++;
			if (!read_digits(&p, 2, &om))
				return false;
			if (*p == ':')
			{
				p++;
				if (!read_digits(&p, 2, &os))
					return false;
			}
		}
		offset = sign * (oh * 3600L + om * 60L + os);
	}
	if (*p != '\0')
		return false;

	*secs = (time_t) (days_since_epoch(year, month, day) * 86400LL +
					  hour * 3600LL + minute * 60LL + second - offset);
	*usec = frac;
	return true;
}

/*
 * Rewrite a timestamp in UTC as "YYYY-MM-DDTHH:MM:SS.ffffff+00:00", the
 * form of the NOTIFY payloads; an unparsable value is copied unchanged.
 */
static void
normalize_timestamp(const char *raw, char *buf, size_t size)
{
	time_t		t;
	int			usec;
	struct tm	tm;

	if (!parse_timestamp(raw, &t, &usec) || gmtime_r(&t, &tm) == NULL)
	{
		snprintf(buf, size, "%s", raw ? raw : "");
		return;
	}
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
}

/*
 * Format a timestamp as local "HH:MM:SS.mmm" (with_date false) or as
 * local "YYYY-MM-DD HH:MM:SS" (with_date true).  NULL gives "-" and an
 * unparsable value is copied unchanged.
 */
static void
format_local_time(const char *raw, bool with_date, char *buf, size_t size)
{
	time_t		t;
	int			usec;
	struct tm	tm;

	if (raw == NULL)
		snprintf(buf, size, "-");
	else if (!parse_timestamp(raw, &t, &usec) ||
			 localtime_r(&t, &tm) == NULL)
		snprintf(buf, size, "%s", raw);
	else if (with_date)
		snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d",
				 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
				 tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		snprintf(buf, size, "%02d:%02d:%02d.%03d",
				 tm.tm_hour, tm.tm_min, tm.tm_sec, usec / 1000);
}

/*
 * Format a number of seconds given as text ("12.345000") for people:
 * "12.345s", "3m07s", "2h05m09s".  NULL gives "-".
 */
static void
format_duration(const char *secs_text, char *buf, size_t size)
{
	double		secs;
	long long	whole;

	if (secs_text == NULL)
	{
		snprintf(buf, size, "-");
		return;
	}
	secs = strtod(secs_text, NULL);
	if (!(secs >= 0))
		secs = 0;
	if (secs < 60)
	{
		snprintf(buf, size, "%.3fs", secs);
		return;
	}
	whole = (long long) secs;
	if (whole < 3600)
		snprintf(buf, size, "%lldm%02llds", whole / 60, whole % 60);
	else
		snprintf(buf, size, "%lldh%02lldm%02llds", whole / 3600,
				 (whole / 60) % 60, whole % 60);
}

/*
 * Count the characters of the first n bytes of UTF-8 text, which is how
 * wide we assume they print.
 */
static int
display_width_n(const char *s, size_t n)
{
	int			w = 0;
	size_t		i;

	for (i = 0; i < n && s[i] != '\0'; i++)
		if (((unsigned char) s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

/*
 * Return the display width of a whole string.
 */
static int
display_width(const char *s)
{
	return display_width_n(s, strlen(s));
}

/*
 * Write n bytes of untrusted text to stdout, showing control characters
 * other than tab as \xHH so that they cannot drive the terminal.
 */
static void
put_text(const char *s, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

/*
 * Write n spaces.
 */
static void
put_spaces(int n)
{
	while (n-- > 0)
		putchar(' ');
}

/*
 * Start an SGR colour sequence when colour is on; dim may be combined
 * with a colour parameter such as SGR_RED.  Returns whether anything was
 * written, so that the caller knows to reset.
 */
static bool
color_on(bool dim, const char *color)
{
	if (!use_color || (!dim && color == NULL))
		return false;
	printf("\033[%s%s%sm", dim ? "2" : "", (dim && color) ? ";" : "",
		   color ? color : "");
	return true;
}

/*
 * End a colour sequence started by color_on().
 */
static void
color_off(bool on)
{
	if (on)
		fputs("\033[0m", stdout);
}

/*
 * Choose the colour of a run or job status: green for success, red for
 * failure, none otherwise.
 */
static const char *
status_color(const char *status)
{
	if (status == NULL)
		return NULL;
	if (strcmp(status, "completed") == 0 || strcmp(status, "succeeded") == 0)
		return SGR_GREEN;
	if (strcmp(status, "failed") == 0 ||
		strcmp(status, "partially_failed") == 0 ||
		strcmp(status, "timed_out") == 0 ||
		strcmp(status, "canceled") == 0)
		return SGR_RED;
	return NULL;
}

/*
 * Tell whether s is one of the strings of the NULL-terminated list.
 */
static bool
in_list(const char *s, const char *const *list)
{
	for (; s != NULL && *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/*
 * Tell whether status is a terminal status of a run.
 */
static bool
status_is_terminal(const char *status)
{
	return in_list(status, terminal_statuses);
}

/*
 * Map a terminal run status to the exit status: 0 for completed, else 1.
 */
static int
exit_for_status(const char *status)
{
	return (status != NULL && strcmp(status, "completed") == 0) ?
		EXIT_OK : EXIT_RUN_NOT_OK;
}


/* ----------------------------------------------------------------
 *		Text tables
 * ----------------------------------------------------------------
 */

/*
 * Make t an empty table of ncols columns.
 */
static void
table_init(Table *t, int ncols)
{
	t->ncols = ncols;
	t->nrows = 0;
	t->cap = 16;
	t->cells = xmalloc(sizeof(char *) * t->cap * ncols);
	t->colors = xmalloc(sizeof(char *) * t->cap * ncols);
}

/*
 * Append a row; NULL cells print as "-".  colors may be NULL.
 */
static void
table_add(Table *t, const char *const *cells, const char *const *colors)
{
	int			i;

	if (t->nrows == t->cap)
	{
		t->cap *= 2;
		t->cells = xrealloc(t->cells, sizeof(char *) * t->cap * t->ncols);
		t->colors = xrealloc(t->colors,
							 sizeof(char *) * t->cap * t->ncols);
	}
	for (i = 0; i < t->ncols; i++)
	{
		int			k = t->nrows * t->ncols + i;

		t->cells[k] = xstrdup(cells[i] ? cells[i] : "-");
		t->colors[k] = colors ? colors[i] : NULL;
	}
	t->nrows++;
}

/*
 * Print t indented by indent spaces.  Columns are separated by two
 * spaces; the last one is not padded, and its further lines, if any,
 * are indented to where it starts.  Newlines elsewhere become spaces.
 */
static void
table_print(const Table *t, int indent)
{
	int		   *width = xmalloc(sizeof(int) * t->ncols);
	int			last_start = indent;
	int			r,
				c;

	for (c = 0; c < t->ncols; c++)
	{
		width[c] = 0;
		for (r = 0; r < t->nrows; r++)
		{
			int			w = display_width(t->cells[r * t->ncols + c]);

			if (w > width[c])
				width[c] = w;
		}
		if (c < t->ncols - 1)
			last_start += width[c] + 2;
	}

	for (r = 0; r < t->nrows; r++)
	{
		put_spaces(indent);
		for (c = 0; c < t->ncols; c++)
		{
			const char *cell = t->cells[r * t->ncols + c];
			bool		on = color_on(r == 0, t->colors[r * t->ncols + c]);
			bool		last = (c == t->ncols - 1);
			const char *p;

			for (p = cell; *p != '\0'; p++)
			{
				const char *nl = strchr(p, '\n');
				size_t		n = nl ? (size_t) (nl - p) : strlen(p);

				put_text(p, n);
				p += n;
				if (*p == '\0')
					break;
				if (last)
				{
					color_off(on);
					putchar('\n');
					put_spaces(last_start);
					on = color_on(r == 0, t->colors[r * t->ncols + c]);
				}
				else
					putchar(' ');
			}
			color_off(on);
			if (!last)
				put_spaces(width[c] - display_width(cell) + 2);
		}
		putchar('\n');
	}
	free(width);
}

/*
 * Release the memory of t.
 */
static void
table_free(Table *t)
{
	int			i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->colors);
}


/* ----------------------------------------------------------------
 *		Command-line parsing
 * ----------------------------------------------------------------
 */

/*
 * Handle the next short option of a group such as "-fd conninfo".
 */
static int
take_short(ArgIter *it, const OptDef *defs, const char **value)
{
	char		c = *it->bundle++;
	const OptDef *d;

	for (d = defs; d->id != 0; d++)
		if (d->short_name == c)
			break;
	if (d->id == 0)
		usage_error(it, "invalid option -- '%c'", c);
	if (d->has_arg)
	{
		if (*it->bundle != '\0')
			*value = it->bundle;
		else if (it->index < it->argc)
			*value = it->argv[it->index++];
		else
			usage_error(it, "option -%c requires a value", c);
		it->bundle = NULL;
	}
	return d->id;
}

/*
 * Handle a long option, given without its leading "--".
 */
static int
take_long(ArgIter *it, const OptDef *defs, const char *arg,
		  const char **value)
{
	const char *eq = strchr(arg, '=');
	size_t		len = eq ? (size_t) (eq - arg) : strlen(arg);
	const OptDef *d;

	for (d = defs; d->id != 0; d++)
		if (d->long_name != NULL && strlen(d->long_name) == len &&
			strncmp(d->long_name, arg, len) == 0)
			break;
	if (d->id == 0)
		usage_error(it, "unrecognized option \"--%.*s\"", (int) len, arg);
	if (d->has_arg)
	{
		if (eq != NULL)
			*value = eq + 1;
		else if (it->index < it->argc)
			*value = it->argv[it->index++];
		else
			usage_error(it, "option --%s requires a value", d->long_name);
	}
	else if (eq != NULL)
		usage_error(it, "option --%s does not take a value", d->long_name);
	return d->id;
}

/*
 * Return the id of the next option, OPT_POSITIONAL with *value set for
 * an operand, or OPT_END.  Options and operands may be mixed; "--" makes
 * everything after it an operand.
 */
static int
next_arg(ArgIter *it, const OptDef *defs, const char **value)
{
	*value = NULL;
	if (it->bundle != NULL && *it->bundle != '\0')
		return take_short(it, defs, value);
	it->bundle = NULL;
	while (it->index < it->argc)
	{
		const char *arg = it->argv[it->index++];

		if (it->only_positional || arg[0] != '-' || arg[1] == '\0')
		{
			*value = arg;
			return OPT_POSITIONAL;
		}
		if (strcmp(arg, "--") == 0)
		{
			it->only_positional = true;
			continue;
		}
		if (arg[1] == '-')
			return take_long(it, defs, arg + 2, value);
		it->bundle = arg + 1;
		return take_short(it, defs, value);
	}
	return OPT_END;
}

/*
 * Handle the options all commands share; false if id is not one of them.
 */
static bool
handle_common_option(const ArgIter *it, int id, const char *value)
{
	switch (id)
	{
		case OPT_DBNAME:
			dbname_opt = value;
			return true;
		case OPT_HELP:
			find_command(it->command)->help();
			finish_and_exit(EXIT_OK);
		default:
			return false;
	}
}

/*
 * Parse a decimal integer within [min, max]; false if s is not one.
 */
static bool
parse_integer(const char *s, long long min, long long max, long long *out)
{
	char	   *end;
	long long	v;

	if (s == NULL || *s == '\0' || !(IS_DIGIT(*s) || *s == '-'))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/*
 * Take the single operand a command expects.
 */
static void
set_operand(const ArgIter *it, const char **slot, const char *value,
			const char *what)
{
	if (*slot != NULL)
		usage_error(it, "too many arguments (%s given twice?)", what);
	*slot = value;
}


/* ----------------------------------------------------------------
 *		Connection and queries
 * ----------------------------------------------------------------
 */

/*
 * Remember a signal; cancel the running query, if any, so that we get
 * control back promptly.  PQcancel() is safe in a signal handler.
 */
static void
handle_signal(int signo)
{
	int			save_errno = errno;
	PGcancel   *cancel = cancel_handle;
	char		errbuf[256];

	interrupted = signo;
	if (cancel != NULL)
		(void) PQcancel(cancel, errbuf, sizeof(errbuf));
	errno = save_errno;
}

/*
 * Print libpq's error message for the connection, after a prefix.
 */
static void
report_libpq_error(const char *prefix)
{
	const char *msg = PQerrorMessage(conn);
	size_t		len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		len--;
	if (len == 0)
	{
		msg = "unknown error";
		len = strlen(msg);
	}
	fprintf(stderr, "%s: %s%.*s\n", progname, prefix, (int) len, msg);
}

/*
 * Print a notice or warning from the server on stderr, in our format.
 */
static void
print_notice(void *arg, const char *message)
{
	size_t		len = strlen(message);

	(void) arg;
	while (len > 0 && message[len - 1] == '\n')
		len--;
	fprintf(stderr, "%s: %.*s\n", progname, (int) len, message);
}

/*
 * Connect as libpq's environment and -d/--dbname say, then install the
 * signal handlers.  Exits on failure.
 */
static void
connect_db(void)
{
	const char *keywords[4];
	const char *values[4];
	struct sigaction sa;

	/*
	 * A connection string in dbname is expanded in place, so the entries
	 * after it take precedence: the client encoding must be UTF-8 for the
	 * JSON we parse and write, whatever the user's settings say.
	 */
	keywords[0] = "dbname";
	values[0] = dbname_opt;
	keywords[1] = "fallback_application_name";
	values[1] = progname;
	keywords[2] = "client_encoding";
	values[2] = "UTF8";
	keywords[3] = NULL;
	values[3] = NULL;

	conn = PQconnectdbParams(keywords, values, 1);
	if (conn == NULL)
		fatal("out of memory");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		report_libpq_error("");
		finish_and_exit(EXIT_TROUBLE);
	}
	PQsetNoticeProcessor(conn, print_notice, NULL);
	cancel_handle = PQgetCancel(conn);

	/* machine-readable timestamps are always given in UTC */
	PQclear(run_query("SET TimeZone TO 'UTC'", 0, NULL));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;			/* no SA_RESTART: poll() must wake up */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/*
 * Report a failed query: the server's message with its SQLSTATE, detail
 * and hint, or libpq's message when the failure is on our side.
 */
static void
report_query_error(const PGresult *res)
{
	const char *primary = NULL;
	const char *sqlstate;
	const char *detail;
	const char *hint;

	if (res != NULL)
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (primary == NULL)
	{
		if (PQstatus(conn) == CONNECTION_BAD)
			report_libpq_error("connection to server was lost: ");
		else
			report_libpq_error("");
		return;
	}
	sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);

	if (sqlstate != NULL)
		report("%s (SQLSTATE %s)", primary, sqlstate);
	else
		report("%s", primary);
	if (detail != NULL)
		report("DETAIL: %s", detail);
	if (hint != NULL)
		report("HINT: %s", hint);
	else if (sqlstate != NULL && strstr(primary, "stellapack") != NULL &&
			 (strcmp(sqlstate, "3F000") == 0 ||
			  strcmp(sqlstate, "42P01") == 0 ||
			  strcmp(sqlstate, "42883") == 0))
		report("HINT: Is the stellapack extension installed and up to "
			   "date in database \"%s\"?", PQdb(conn));
}

/*
 * Run a query with text parameters and return its result; on any error,
 * report it and exit with status 2.  An interrupt exits quietly.
 */
static PGresult *
run_query(const char *sql, int nparams, const char *const *params)
{
	PGresult   *res;
	ExecStatusType status;

	res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (interrupted)
	{
		PQclear(res);
		check_interrupt();
	}
	status = PQresultStatus(res);
	if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
	{
		report_query_error(res);
		PQclear(res);
		finish_and_exit(EXIT_TROUBLE);
	}
	return res;
}

/*
 * Return the value of a result field, or NULL if it is SQL NULL.
 */
static const char *
get_value(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/*
 * Return the time of a monotonic clock in milliseconds.
 */
static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * Sleep for ms milliseconds, or less if a signal arrives.
 */
static void
sleep_ms(int ms)
{
	(void) poll(NULL, 0, ms);
	check_interrupt();
}

/*
 * Look a run up by the id the user gave.  Exits if there is no such run.
 */
static RunInfo
lookup_run(const char *run_arg)
{
	static const char *sql =
		"SELECT r.id::text, r.status,"
		" (SELECT coalesce(max(char_length(j.job)), 0)"
		"  FROM stellapack.job_runs j WHERE j.run_id = r.id)"
		" FROM stellapack.pack_runs r WHERE r.id = $1";
	const char *params[1];
	PGresult   *res;
	RunInfo		info;

	params[0] = run_arg;
	res = run_query(sql, 1, params);
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		fatal("run \"%s\" does not exist", run_arg);
	}
	info.id = xstrdup(PQgetvalue(res, 0, 0));
	info.status = xstrdup(PQgetisnull(res, 0, 1) ? "" :
						  PQgetvalue(res, 0, 1));
	info.job_width = atoi(PQgetvalue(res, 0, 2));
	if (info.job_width > JOB_WIDTH_MAX)
		info.job_width = JOB_WIDTH_MAX;
	if (info.job_width < 1)
		info.job_width = 1;
	PQclear(res);
	return info;
}

/*
 * Release the strings of a RunInfo.
 */
static void
free_run_info(RunInfo *info)
{
	free(info->id);
	free(info->status);
}

/*
 * Print one row of a pack_runs-shaped result the simple way: the row's
 * JSON for --json, otherwise "Run ID: STATUS".  Columns are id, status,
 * row JSON.
 */
static void
print_run_status_row(const PGresult *res, bool json)
{
	if (json)
	{
		char	   *row = json_minify(PQgetvalue(res, 0, 2),
									  PQgetlength(res, 0, 2));

		puts(row);
		free(row);
	}
	else
	{
		const char *status = PQgetvalue(res, 0, 1);
		bool		on;

		printf("Run %s: ", PQgetvalue(res, 0, 0));
		on = color_on(false, status_color(status));
		fputs(status, stdout);
		color_off(on);
		putchar('\n');
	}
}


/* ----------------------------------------------------------------
 *		Log lines
 * ----------------------------------------------------------------
 */

/*
 * Tell whether l is the system line that ends every run.
 */
static bool
line_is_run_finished(const LogLine *l)
{
	return l->job == NULL && l->stream != NULL && l->event != NULL &&
		strcmp(l->stream, "system") == 0 &&
		strcmp(l->event, "run_finished") == 0;
}

/*
 * Print a log line as one compact JSON object.
 */
static void
print_log_line_json(const LogLine *l)
{
	StrBuf		sb;
	char		ts[64];

	normalize_timestamp(l->ts, ts, sizeof(ts));
	sb_init(&sb);
	sb_puts(&sb, "{\"run\":");
	sb_put_json_string(&sb, l->run);
	sb_printf(&sb, ",\"seq\":%lld,\"ts\":", l->seq);
	sb_put_json_string(&sb, ts);
	sb_puts(&sb, ",\"job\":");
	sb_put_json_string(&sb, l->job);
	sb_puts(&sb, ",\"level\":");
	sb_put_json_string(&sb, l->level);
	sb_puts(&sb, ",\"stream\":");
	sb_put_json_string(&sb, l->stream);
	sb_puts(&sb, ",\"message\":");
	sb_put_json_string(&sb, l->message);
	sb_puts(&sb, ",\"data\":");
	sb_puts(&sb, l->data ? l->data : "null");
	sb_puts(&sb, "}\n");
	fwrite(sb.data, 1, sb.len, stdout);
	sb_free(&sb);
}

/*
 * Print a log line for people: "HH:MM:SS.mmm  JOB  LEVEL  MESSAGE", with
 * further lines of the message indented under its first one.
 */
static void
print_log_line_text(OutputOpts *out, const LogLine *l)
{
	const char *job = l->job ? l->job : "-";
	const char *level = l->level ? l->level : "";
	const char *msg = l->message ? l->message : "";
	size_t		msglen = strlen(msg);
	bool		dim = l->stream != NULL && strcmp(l->stream, "system") == 0;
	const char *color = NULL;
	char		clock[64];
	int			w = display_width(job);
	int			lw;
	int			indent;
	bool		on;

	if (strcmp(level, "warning") == 0)
		color = SGR_YELLOW;
	else if (strcmp(level, "error") == 0)
		color = SGR_RED;
	if (w > out->job_width && w <= JOB_WIDTH_MAX)
		out->job_width = w;
	format_local_time(l->ts, false, clock, sizeof(clock));

	on = color_on(dim, NULL);
	fputs(clock, stdout);
	fputs("  ", stdout);
	put_text(job, strlen(job));
	put_spaces((w < out->job_width ? out->job_width - w : 0) + 2);
	color_off(on);

	on = color_on(dim, color);
	put_text(level, strlen(level));
	color_off(on);
	lw = display_width(level);
	put_spaces((lw < LEVEL_WIDTH ? LEVEL_WIDTH - lw : 0) + 2);
	indent = display_width(clock) + 2 +
		(w > out->job_width ? w : out->job_width) + 2 +
		(lw > LEVEL_WIDTH ? lw : LEVEL_WIDTH) + 2;

	/* drop trailing line ends, then print line by line */
	while (msglen > 0 && (msg[msglen - 1] == '\n' || msg[msglen - 1] == '\r'))
		msglen--;
	on = color_on(dim, color);
	for (;;)
	{
		const char *nl = memchr(msg, '\n', msglen);
		size_t		n = nl ? (size_t) (nl - msg) : msglen;
		size_t		shown = n;

		if (shown > 0 && msg[shown - 1] == '\r')
			shown--;
		put_text(msg, shown);
		if (nl == NULL)
			break;
		msg += n + 1;
		msglen -= n + 1;
		color_off(on);
		putchar('\n');
		put_spaces(indent);
		on = color_on(dim, color);
	}
	color_off(on);
	putchar('\n');
}

/*
 * Remember the terminal status of a followed run.
 */
static void
set_final_status(Follower *f, const char *status)
{
	free(f->final_status);
	f->final_status = xstrdup(status);
}

/*
 * Print a line, note it as the last one printed, and notice the end of
 * the run.
 */
static void
emit_line(Follower *f, const LogLine *l)
{
	if (f->out->json)
		print_log_line_json(l);
	else
		print_log_line_text(f->out, l);
	flush_stdout();
	f->last = l->seq;
	if (line_is_run_finished(l))
	{
		f->finished = true;
		if (l->status != NULL)
			set_final_status(f, l->status);
	}
}

/*
 * Fetch and print up to max_rows lines after f->last from the log table,
 * stopping after the run_finished line.  Returns the number of rows the
 * server sent.
 */
static int
fetch_log_page(Follower *f, int max_rows)
{
	static const char *sql =
		"SELECT l.run_id::text, l.seq, to_json(l.ts) #>> '{}', l.job,"
		" l.level, l.stream, l.message, l.data::text,"
		" l.data ->> 'event', l.data ->> 'status'"
		" FROM stellapack.pack_run_logs(run_id => $1, after_seq => $2,"
		" max_rows => $3) l ORDER BY l.seq";
	char		after[32];
	char		rows[32];
	const char *params[3];
	PGresult   *res;
	int			n;
	int			i;

	snprintf(after, sizeof(after), "%lld", f->last);
	snprintf(rows, sizeof(rows), "%d", max_rows);
	params[0] = f->run_id;
	params[1] = after;
	params[2] = rows;
	res = run_query(sql, 3, params);
	n = PQntuples(res);
	for (i = 0; i < n && !f->finished; i++)
	{
		LogLine		l;
		char	   *data = NULL;

		l.seq = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		if (l.seq <= f->last)
			continue;
		if (!PQgetisnull(res, i, 7))
			data = json_minify(PQgetvalue(res, i, 7),
							   PQgetlength(res, i, 7));
		l.run = get_value(res, i, 0);
		l.ts = get_value(res, i, 2);
		l.job = get_value(res, i, 3);
		l.level = get_value(res, i, 4);
		l.stream = get_value(res, i, 5);
		l.message = get_value(res, i, 6);
		l.data = data;
		l.event = get_value(res, i, 8);
		l.status = get_value(res, i, 9);
		emit_line(f, &l);
		free(data);
	}
	PQclear(res);
	return n;
}

/*
 * Print everything the log table has after f->last, page by page, until
 * a page comes back short or the run_finished line is printed.
 */
static void
drain_backlog(Follower *f)
{
	while (!f->finished && fetch_log_page(f, LOG_PAGE_ROWS) == LOG_PAGE_ROWS)
		;
}

/*
 * Return a string member of a jansson object, or NULL if it is absent or
 * not a string.
 */
static const char *
member_string(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/*
 * Act on one notification of the run's channel: print the line it
 * carries if it is the next one, ignore it if we already have it, and
 * otherwise get what is missing from the table.
 */
static void
handle_notification(Follower *f, const char *payload)
{
	json_t	   *root;
	json_t	   *seqv;
	json_t	   *jobv;
	json_t	   *data;
	const char *run;
	long long	seq;
	LogLine		l;
	const char *raw;
	size_t		rawlen;
	char	   *data_text = NULL;

	root = json_loads(payload, 0, NULL);
	if (root == NULL || !json_is_object(root))
	{
		/* we cannot read it (e.g. a huge number in data): use the table */
		json_decref(root);
		drain_backlog(f);
		return;
	}
	run = member_string(root, "run");
	if (run != NULL && strcmp(run, f->run_id) != 0)
	{
		json_decref(root);		/* another run's line */
		return;
	}
	seqv = json_object_get(root, "seq");
	if (!json_is_integer(seqv))
	{
		json_decref(root);
		drain_backlog(f);
		return;
	}
	seq = json_integer_value(seqv);
	if (seq <= f->last)
	{
		json_decref(root);		/* a duplicate */
		return;
	}
	if (seq > f->last + 1)
	{
		json_decref(root);		/* a gap: we missed something */
		drain_backlog(f);
		return;
	}
	if (json_is_true(json_object_get(root, "truncated")))
	{
		json_decref(root);		/* the full text is in the table */
		fetch_log_page(f, 1);
		return;
	}

	jobv = json_object_get(root, "job");
	data = json_object_get(root, "data");
	l.run = run ? run : f->run_id;
	l.seq = seq;
	l.ts = member_string(root, "ts");
	l.job = json_string_value(jobv);
	l.level = member_string(root, "level");
	l.stream = member_string(root, "stream");
	l.message = member_string(root, "message");
	l.event = member_string(data, "event");
	l.status = member_string(data, "status");
	if (l.ts == NULL || l.level == NULL || l.stream == NULL ||
		l.message == NULL || (jobv != NULL && !json_is_null(jobv) &&
							  l.job == NULL))
	{
		json_decref(root);		/* not the shape we know: use the table */
		fetch_log_page(f, 1);
		return;
	}
	if (data != NULL && json_find_member(payload, "data", &raw, &rawlen))
		data_text = json_minify(raw, rawlen);
	l.data = data_text;
	emit_line(f, &l);
	free(data_text);
	json_decref(root);
}

/*
 * Handle all notifications libpq has queued.  Any notification on our
 * channel postpones the next safety-net check.
 */
static void
process_notifies(Follower *f, long long *next_check)
{
	PGnotify   *n;

	while (!f->finished && (n = PQnotifies(conn)) != NULL)
	{
		if (strcmp(n->relname, f->channel) == 0)
		{
			*next_check = now_ms() + SAFETY_NET_MS;
			handle_notification(f, n->extra);
		}
		PQfreemem(n);
	}
}

/*
 * Run the periodic safety net: read the run's status, then drain the
 * backlog.  Returns true when following should stop, i.e. the run was
 * in a terminal status before the backlog was drained.
 */
static bool
safety_check(Follower *f)
{
	static const char *sql =
		"SELECT status FROM stellapack.pack_runs WHERE id = $1";
	const char *params[1];
	PGresult   *res;
	char	   *status;

	params[0] = f->run_id;
	res = run_query(sql, 1, params);
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		fatal("run \"%s\" no longer exists", f->run_id);
	}
	status = xstrdup(PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
	PQclear(res);

	drain_backlog(f);
	if (!f->finished && status_is_terminal(status))
	{
		set_final_status(f, status);
		f->finished = true;
	}
	free(status);
	return f->finished;
}

/*
 * Ask the server for the run's channel and LISTEN on it.
 */
static void
listen_run(Follower *f)
{
	static const char *sql =
		"SELECT stellapack.pack_run_channel(run_id => $1)";
	const char *params[1];
	PGresult   *res;
	char	   *quoted;
	StrBuf		sb;

	params[0] = f->run_id;
	res = run_query(sql, 1, params);
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
	{
		PQclear(res);
		fatal("stellapack.pack_run_channel() returned no channel for "
			  "run \"%s\"", f->run_id);
	}
	f->channel = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);

	quoted = PQescapeIdentifier(conn, f->channel, strlen(f->channel));
	if (quoted == NULL)
	{
		report_libpq_error("could not quote channel name: ");
		finish_and_exit(EXIT_TROUBLE);
	}
	sb_init(&sb);
	sb_printf(&sb, "LISTEN %s", quoted);
	PQfreemem(quoted);
	PQclear(run_query(sb.data, 0, NULL));
	sb_free(&sb);
}

/*
 * Follow a run until it ends: LISTEN, drain the backlog, then apply
 * notifications, with the safety net every SAFETY_NET_MS of silence.
 */
static void
follow_run(Follower *f, const char *initial_status)
{
	long long	next_check;

	listen_run(f);
	drain_backlog(f);

	/* a run that had ended before we looked has nothing more to say */
	if (!f->finished && status_is_terminal(initial_status))
	{
		set_final_status(f, initial_status);
		f->finished = true;
	}

	next_check = now_ms() + SAFETY_NET_MS;
	while (!f->finished)
	{
		struct pollfd pfd;
		long long	now;
		int			rc;

		process_notifies(f, &next_check);
		if (f->finished)
			break;
		now = now_ms();
		if (now >= next_check)
		{
			if (safety_check(f))
				break;
			next_check = now_ms() + SAFETY_NET_MS;
			continue;
		}

		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd < 0)
		{
			report_libpq_error("connection to server was lost: ");
			finish_and_exit(EXIT_TROUBLE);
		}
		rc = poll(&pfd, 1, (int) (next_check - now));
		if (rc < 0)
		{
			if (errno == EINTR)
			{
				check_interrupt();
				continue;
			}
			fatal("poll() failed: %s", strerror(errno));
		}
		if (rc > 0 && !PQconsumeInput(conn))
		{
			report_libpq_error("connection to server was lost: ");
			finish_and_exit(EXIT_TROUBLE);
		}
	}
}

/*
 * Print, after a followed run, its status and a line per job run.
 */
static void
print_run_summary(Follower *f)
{
	static const char *run_sql =
		"SELECT extract(epoch FROM coalesce(finished_at, now()) - started_at)"
		" FROM stellapack.pack_runs WHERE id = $1";
	static const char *jobs_sql =
		"SELECT job, status, attempt::text,"
		" extract(epoch FROM coalesce(finished_at, now()) - started_at)"
		" FROM stellapack.job_runs WHERE run_id = $1"
		" ORDER BY started_at NULLS LAST, job, attempt";
	static const char *const header[] = {
		"JOB", "STATUS", "ATTEMPT", "DURATION"
	};
	const char *params[1];
	PGresult   *res;
	char		duration[64];
	Table		t;
	bool		on;
	int			i;

	params[0] = f->run_id;
	res = run_query(run_sql, 1, params);
	format_duration(PQntuples(res) > 0 ? get_value(res, 0, 0) : NULL,
					duration, sizeof(duration));
	PQclear(res);

	printf("\nRun %s ", f->run_id);
	on = color_on(false, status_color(f->final_status));
	fputs(f->final_status, stdout);
	color_off(on);
	if (strcmp(duration, "-") != 0)
		printf(" in %s", duration);
	putchar('\n');

	res = run_query(jobs_sql, 1, params);
	if (PQntuples(res) > 0)
	{
		table_init(&t, 4);
		table_add(&t, header, NULL);
		for (i = 0; i < PQntuples(res); i++)
		{
			const char *cells[4];
			const char *colors[4] = {NULL, NULL, NULL, NULL};

			format_duration(get_value(res, i, 3), duration,
							sizeof(duration));
			cells[0] = get_value(res, i, 0);
			cells[1] = get_value(res, i, 1);
			cells[2] = get_value(res, i, 2);
			cells[3] = duration;
			colors[1] = status_color(cells[1]);
			table_add(&t, cells, colors);
		}
		table_print(&t, 2);
		table_free(&t);
	}
	PQclear(res);
	flush_stdout();
}

/*
 * Print the log of a run, following it if asked to; return the exit
 * status.  Shared by "logs" and "run --follow".
 */
static int
show_run_log(const char *run_arg, long long after, bool follow,
			 OutputOpts *out)
{
	RunInfo		info = lookup_run(run_arg);
	Follower	f;
	int			rc = EXIT_OK;

	memset(&f, 0, sizeof(f));
	f.run_id = info.id;
	f.last = after;
	f.out = out;
	if (out->job_width < info.job_width)
		out->job_width = info.job_width;

	if (follow)
	{
		follow_run(&f, info.status);
		if (f.final_status == NULL)
		{
			/* the run_finished line had no status: ask the table */
			RunInfo		now = lookup_run(info.id);

			set_final_status(&f, now.status);
			free_run_info(&now);
		}
		if (!out->json)
			print_run_summary(&f);
		rc = exit_for_status(f.final_status);
	}
	else
	{
		drain_backlog(&f);
		if (f.final_status != NULL)
			rc = exit_for_status(f.final_status);
		else if (status_is_terminal(info.status))
			rc = exit_for_status(info.status);
	}
	flush_stdout();
	free(f.channel);
	free(f.final_status);
	free_run_info(&info);
	return rc;
}


/* ----------------------------------------------------------------
 *		Commands
 * ----------------------------------------------------------------
 */

/*
 * Print the help of the "logs" command.
 */
static void
help_logs(void)
{
	printf("Print the log of a run, and optionally follow it.\n\n"
		   "Usage:\n"
		   "  %s logs [OPTION]... RUN_ID\n\n"
		   "Options:\n"
		   "  -f, --follow         keep printing new lines until the "
		   "run ends,\n"
		   "                       then print a summary\n"
		   "      --json           print JSON Lines instead of text\n"
		   "      --after=SEQ      print only lines after sequence "
		   "number SEQ\n"
		   "  -d, --dbname=CONNINFO  database name or connection string\n"
		   "  -h, --help           show this help, then exit\n\n"
		   "Exit status: 0 if the run completed (or, without --follow, "
		   "has not ended\nyet), 1 if it ended otherwise (failed, "
		   "partially_failed, canceled),\n2 on usage, connection or "
		   "SQL errors.\n", progname);
}

/*
 * Implement "logs": print the backlog of a run, and follow it with --follow.
 */
static int
cmd_logs(ArgIter *it)
{
	static const OptDef defs[] = {
		{"follow", 'f', false, OPT_FOLLOW},
		{"json", 0, false, OPT_JSON},
		{"after", 0, true, OPT_AFTER},
		COMMON_OPTS,
		END_OPTS
	};
	OutputOpts	out = {false, 1};
	bool		follow = false;
	long long	after = 0;
	const char *run_arg = NULL;
	const char *value;
	int			id;

	while ((id = next_arg(it, defs, &value)) != OPT_END)
	{
		if (handle_common_option(it, id, value))
			continue;
		switch (id)
		{
			case OPT_FOLLOW:
				follow = true;
				break;
			case OPT_JSON:
				out.json = true;
				break;
			case OPT_AFTER:
				if (!parse_integer(value, 0, LLONG_MAX - 1, &after))
					usage_error(it, "invalid --after value \"%s\": "
								"expected a sequence number", value);
				break;
			case OPT_POSITIONAL:
				set_operand(it, &run_arg, value, "RUN_ID");
				break;
		}
	}
	if (run_arg == NULL)
		usage_error(it, "missing RUN_ID");

	connect_db();
	return show_run_log(run_arg, after, follow, &out);
}

/*
 * Print the help of the "run" command.
 */
static void
help_run(void)
{
	printf("Start a run of a pack and print its id.\n\n"
		   "Usage:\n"
		   "  %s run [OPTION]... PACK\n\n"
		   "Options:\n"
		   "      --version=N      run version N of the pack "
		   "(default: the server's choice)\n"
		   "      --input=KEY=VALUE\n"
		   "                       set input KEY; VALUE is taken as "
		   "JSON if it is valid\n"
		   "                       JSON (42, true, null, \"text\", "
		   "{\"a\":1}), else as a string;\n"
		   "                       may be repeated\n"
		   "  -f, --follow         follow the run like \"logs "
		   "--follow\"\n"
		   "      --json           print JSON instead of text\n"
		   "  -d, --dbname=CONNINFO  database name or connection string\n"
		   "  -h, --help           show this help, then exit\n\n"
		   "Exit status: 0 once the run is started (with --follow: if it "
		   "completed),\n1 with --follow if the run ended otherwise, 2 on "
		   "usage, connection or\nSQL errors.\n", progname);
}

/*
 * Append --input KEY=VALUE to the JSON object text being built in sb.
 */
static void
add_input(const ArgIter *it, StrBuf *sb, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char	   *key;

	if (eq == NULL || eq == arg)
		usage_error(it, "invalid --input \"%s\": expected KEY=VALUE", arg);
	key = xmalloc(eq - arg + 1);
	memcpy(key, arg, eq - arg);
	key[eq - arg] = '\0';

	sb_puts(sb, sb->len > 1 ? "," : "");
	sb_put_json_string(sb, key);
	sb_puts(sb, ":");
	if (json_text_is_value(eq + 1))
		sb_puts(sb, eq + 1);
	else
		sb_put_json_string(sb, eq + 1);
	free(key);
}

/*
 * Implement "run": start a run, print its id, and follow it with --follow.
 */
static int
cmd_run(ArgIter *it)
{
	static const OptDef defs[] = {
		{"version", 0, true, OPT_PACK_VERSION},
		{"input", 0, true, OPT_INPUT},
		{"follow", 'f', false, OPT_FOLLOW},
		{"json", 0, false, OPT_JSON},
		COMMON_OPTS,
		END_OPTS
	};
	static const char *start_sql =
		"SELECT * FROM stellapack.pack_run_start(pack => $1,"
		" version => $2, inputs => $3::jsonb)";
	static const char *row_sql =
		"SELECT r.id::text, r.status, row_to_json(r)::text"
		" FROM stellapack.pack_runs r WHERE r.id = $1";
	OutputOpts	out = {false, 1};
	bool		follow = false;
	const char *pack = NULL;
	const char *version = NULL;
	long long	v;
	StrBuf		inputs;
	const char *params[3];
	PGresult   *res;
	char	   *run_id;
	int			col;
	int			rc = EXIT_OK;
	const char *value;
	int			id;

	sb_init(&inputs);
	sb_puts(&inputs, "{");
	while ((id = next_arg(it, defs, &value)) != OPT_END)
	{
		if (handle_common_option(it, id, value))
			continue;
		switch (id)
		{
			case OPT_PACK_VERSION:
				if (!parse_integer(value, INT_MIN, INT_MAX, &v))
					usage_error(it, "invalid --version value \"%s\": "
								"expected an integer", value);
				version = value;
				break;
			case OPT_INPUT:
				add_input(it, &inputs, value);
				break;
			case OPT_FOLLOW:
				follow = true;
				break;
			case OPT_JSON:
				out.json = true;
				break;
			case OPT_POSITIONAL:
				set_operand(it, &pack, value, "PACK");
				break;
		}
	}
	sb_puts(&inputs, "}");
	if (pack == NULL)
		usage_error(it, "missing PACK");

	connect_db();
	params[0] = pack;
	params[1] = version;
	params[2] = inputs.data;
	res = run_query(start_sql, 3, params);
	sb_free(&inputs);
	if (PQntuples(res) == 0 || PQnfields(res) == 0)
	{
		PQclear(res);
		fatal("stellapack.pack_run_start() returned no run");
	}
	col = PQfnumber(res, "id");
	if (col < 0)
		col = 0;
	if (PQgetisnull(res, 0, col))
	{
		PQclear(res);
		fatal("stellapack.pack_run_start() returned no run id");
	}
	run_id = xstrdup(PQgetvalue(res, 0, col));
	PQclear(res);

	if (follow)
	{
		if (!out.json)
		{
			puts(run_id);
			flush_stdout();
		}
		rc = show_run_log(run_id, 0, true, &out);
	}
	else if (out.json)
	{
		params[0] = run_id;
		res = run_query(row_sql, 1, params);
		if (PQntuples(res) == 0)
		{
			PQclear(res);
			fatal("run \"%s\" does not exist", run_id);
		}
		print_run_status_row(res, true);
		PQclear(res);
	}
	else
		puts(run_id);
	free(run_id);
	return rc;
}

/*
 * Print the help of the "runs" command.
 */
static void
help_runs(void)
{
	printf("List recent runs, newest first.\n\n"
		   "Usage:\n"
		   "  %s runs [OPTION]...\n\n"
		   "Options:\n"
		   "      --limit=N        show at most N runs (default %s)\n"
		   "      --pack=NAME      only runs of pack NAME\n"
		   "      --status=STATUS  only runs in STATUS (pending, running, "
		   "completed,\n"
		   "                       partially_failed, failed, canceled)\n"
		   "      --json           one JSON object per run\n"
		   "  -d, --dbname=CONNINFO  database name or connection string\n"
		   "  -h, --help           show this help, then exit\n\n"
		   "Exit status: 0 on success, 2 on usage, connection or SQL "
		   "errors.\n", progname, DEFAULT_RUNS_LIMIT);
}

/*
 * Implement "runs": list recent runs from stellapack.pack_runs.
 */
static int
cmd_runs(ArgIter *it)
{
	static const OptDef defs[] = {
		{"limit", 0, true, OPT_LIMIT},
		{"pack", 0, true, OPT_PACK},
		{"status", 0, true, OPT_STATUS},
		{"json", 0, false, OPT_JSON},
		COMMON_OPTS,
		END_OPTS
	};
	static const char *sql =
		"SELECT r.id::text, r.pack, r.version::text, r.status,"
		" to_json(r.created_at) #>> '{}', r.jobs_succeeded::text,"
		" r.jobs_failed::text, r.jobs_skipped::text, r.jobs_total::text,"
		" row_to_json(r)::text"
		" FROM stellapack.pack_runs r"
		" WHERE ($1::text IS NULL OR r.pack = $1)"
		" AND ($2::text IS NULL OR r.status = $2)"
		" ORDER BY r.created_at DESC, r.id DESC LIMIT $3::int";
	static const char *const header[] = {
		"ID", "PACK", "VERSION", "STATUS", "CREATED",
		"JOBS OK/FAILED/SKIPPED"
	};
	bool		json = false;
	const char *params[3] = {NULL, NULL, DEFAULT_RUNS_LIMIT};
	long long	v;
	PGresult   *res;
	int			i;
	const char *value;
	int			id;

	while ((id = next_arg(it, defs, &value)) != OPT_END)
	{
		if (handle_common_option(it, id, value))
			continue;
		switch (id)
		{
			case OPT_LIMIT:
				if (!parse_integer(value, 1, INT_MAX, &v))
					usage_error(it, "invalid --limit value \"%s\": "
								"expected a positive integer", value);
				params[2] = value;
				break;
			case OPT_PACK:
				params[0] = value;
				break;
			case OPT_STATUS:
				if (!in_list(value, run_statuses))
					usage_error(it, "invalid --status value \"%s\"", value);
				params[1] = value;
				break;
			case OPT_JSON:
				json = true;
				break;
			case OPT_POSITIONAL:
				usage_error(it, "unexpected argument \"%s\"", value);
		}
	}

	connect_db();
	res = run_query(sql, 3, params);
	if (json)
	{
		for (i = 0; i < PQntuples(res); i++)
		{
			char	   *row = json_minify(PQgetvalue(res, i, 9),
										  PQgetlength(res, i, 9));

			puts(row);
			free(row);
		}
	}
	else if (PQntuples(res) == 0)
		puts("No runs found.");
	else
	{
		Table		t;

		table_init(&t, 6);
		table_add(&t, header, NULL);
		for (i = 0; i < PQntuples(res); i++)
		{
			const char *cells[6];
			const char *colors[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
			char		created[64];
			char		jobs[128];

			format_local_time(get_value(res, i, 4), true, created,
							  sizeof(created));
			snprintf(jobs, sizeof(jobs), "%s/%s/%s of %s",
					 PQgetisnull(res, i, 5) ? "-" : PQgetvalue(res, i, 5),
					 PQgetisnull(res, i, 6) ? "-" : PQgetvalue(res, i, 6),
					 PQgetisnull(res, i, 7) ? "-" : PQgetvalue(res, i, 7),
					 PQgetisnull(res, i, 8) ? "-" : PQgetvalue(res, i, 8));
			cells[0] = get_value(res, i, 0);
			cells[1] = get_value(res, i, 1);
			cells[2] = get_value(res, i, 2);
			cells[3] = get_value(res, i, 3);
			cells[4] = created;
			cells[5] = jobs;
			colors[3] = status_color(cells[3]);
			table_add(&t, cells, colors);
		}
		table_print(&t, 0);
		table_free(&t);
	}
	PQclear(res);
	flush_stdout();
	return EXIT_OK;
}

/*
 * Print the help of the "show" command.
 */
static void
help_show(void)
{
	printf("Show a run and its job runs.\n\n"
		   "Usage:\n"
		   "  %s show [OPTION]... RUN_ID\n\n"
		   "Options:\n"
		   "      --json           one JSON object for the run, then one "
		   "per job run\n"
		   "  -d, --dbname=CONNINFO  database name or connection string\n"
		   "  -h, --help           show this help, then exit\n\n"
		   "Exit status: 0 on success, 2 on usage, connection or SQL "
		   "errors.\n", progname);
}

/*
 * Implement "show": print a run and its job runs.
 */
static int
cmd_show(ArgIter *it)
{
	static const OptDef defs[] = {
		{"json", 0, false, OPT_JSON},
		COMMON_OPTS,
		END_OPTS
	};
	static const char *run_sql =
		"SELECT r.id::text, r.pack, r.version::text, r.status,"
		" r.started_by, to_json(r.created_at) #>> '{}',"
		" to_json(r.started_at) #>> '{}', to_json(r.finished_at) #>> '{}',"
		" extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at),"
		" r.jobs_succeeded::text, r.jobs_failed::text,"
		" r.jobs_skipped::text, r.jobs_total::text, r.inputs::text,"
		" row_to_json(r)::text"
		" FROM stellapack.pack_runs r WHERE r.id = $1";
	static const char *jobs_sql =
		"SELECT j.job, j.kind, j.status, j.attempt::text,"
		" extract(epoch FROM coalesce(j.finished_at, now()) - j.started_at),"
		" j.sqlstate, j.error, row_to_json(j)::text"
		" FROM stellapack.job_runs j WHERE j.run_id = $1"
		" ORDER BY j.started_at NULLS LAST, j.job, j.attempt";
	static const char *const header[] = {
		"JOB", "KIND", "STATUS", "ATTEMPT", "DURATION", "SQLSTATE", "ERROR"
	};
	bool		json = false;
	const char *run_arg = NULL;
	const char *params[1];
	PGresult   *res;
	PGresult   *jobs;
	int			i;
	const char *value;
	int			id;

	while ((id = next_arg(it, defs, &value)) != OPT_END)
	{
		if (handle_common_option(it, id, value))
			continue;
		switch (id)
		{
			case OPT_JSON:
				json = true;
				break;
			case OPT_POSITIONAL:
				set_operand(it, &run_arg, value, "RUN_ID");
				break;
		}
	}
	if (run_arg == NULL)
		usage_error(it, "missing RUN_ID");

	connect_db();
	params[0] = run_arg;
	res = run_query(run_sql, 1, params);
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		fatal("run \"%s\" does not exist", run_arg);
	}
	params[0] = PQgetvalue(res, 0, 0);
	jobs = run_query(jobs_sql, 1, params);

	if (json)
	{
		char	   *row = json_minify(PQgetvalue(res, 0, 14),
									  PQgetlength(res, 0, 14));

		puts(row);
		free(row);
		for (i = 0; i < PQntuples(jobs); i++)
		{
			row = json_minify(PQgetvalue(jobs, i, 7),
							  PQgetlength(jobs, i, 7));
			puts(row);
			free(row);
		}
	}
	else
	{
		char		buf[128];
		char	   *inputs = NULL;
		const char *status = get_value(res, 0, 3);
		bool		on;
		Table		t;

		printf("Run:         %s\n", PQgetvalue(res, 0, 0));
		fputs("Pack:        ", stdout);
		put_text(PQgetvalue(res, 0, 1), PQgetlength(res, 0, 1));
		if (!PQgetisnull(res, 0, 2))
			printf(" (version %s)", PQgetvalue(res, 0, 2));
		fputs("\nStatus:      ", stdout);
		on = color_on(false, status_color(status));
		fputs(status ? status : "-", stdout);
		color_off(on);
		fputs("\nStarted by:  ", stdout);
		put_text(PQgetvalue(res, 0, 4), PQgetlength(res, 0, 4));
		if (PQgetisnull(res, 0, 4))
			putchar('-');
		format_local_time(get_value(res, 0, 5), true, buf, sizeof(buf));
		printf("\nCreated:     %s\n", buf);
		format_local_time(get_value(res, 0, 6), true, buf, sizeof(buf));
		printf("Started:     %s\n", buf);
		format_local_time(get_value(res, 0, 7), true, buf, sizeof(buf));
		printf("Finished:    %s\n", buf);
		format_duration(get_value(res, 0, 8), buf, sizeof(buf));
		printf("Duration:    %s%s\n", buf,
			   (PQgetisnull(res, 0, 7) && !PQgetisnull(res, 0, 8)) ?
			   " (so far)" : "");
		printf("Jobs:        %s succeeded, %s failed, %s skipped of %s\n",
			   PQgetvalue(res, 0, 9), PQgetvalue(res, 0, 10),
			   PQgetvalue(res, 0, 11), PQgetvalue(res, 0, 12));
		fputs("Inputs:      ", stdout);
		if (!PQgetisnull(res, 0, 13))
		{
			inputs = json_minify(PQgetvalue(res, 0, 13),
								 PQgetlength(res, 0, 13));
			put_text(inputs, strlen(inputs));
			free(inputs);
		}
		else
			putchar('-');
		putchar('\n');

		if (PQntuples(jobs) > 0)
		{
			putchar('\n');
			table_init(&t, 7);
			table_add(&t, header, NULL);
			for (i = 0; i < PQntuples(jobs); i++)
			{
				const char *cells[7];
				const char *colors[7] = {NULL};

				format_duration(get_value(jobs, i, 4), buf, sizeof(buf));
				cells[0] = get_value(jobs, i, 0);
				cells[1] = get_value(jobs, i, 1);
				cells[2] = get_value(jobs, i, 2);
				cells[3] = get_value(jobs, i, 3);
				cells[4] = buf;
				cells[5] = get_value(jobs, i, 5);
				cells[6] = get_value(jobs, i, 6);
				colors[2] = status_color(cells[2]);
				if (cells[6] != NULL)
					colors[6] = SGR_RED;
				table_add(&t, cells, colors);
			}
			table_print(&t, 0);
			table_free(&t);
		}
	}
	PQclear(jobs);
	PQclear(res);
	flush_stdout();
	return EXIT_OK;
}

/*
 * Print the help of the "wait" command.
 */
static void
help_wait(void)
{
	printf("Wait until a run ends and print its final status.\n\n"
		   "Usage:\n"
		   "  %s wait [OPTION]... RUN_ID\n\n"
		   "Options:\n"
		   "      --timeout=SECONDS  give up after SECONDS (decimals "
		   "allowed; default:\n"
		   "                       wait as long as it takes)\n"
		   "      --json           print the run as a JSON object\n"
		   "  -d, --dbname=CONNINFO  database name or connection string\n"
		   "  -h, --help           show this help, then exit\n\n"
		   "Exit status: 0 if the run completed, 1 if it ended otherwise, "
		   "2 on usage,\nconnection or SQL errors, 3 if the timeout "
		   "expired first.\n", progname);
}

/*
 * Implement "wait": wait for a run to reach a terminal status, calling
 * pack_run_wait() for at most WAIT_CHUNK_SECS at a time.
 */
static int
cmd_wait(ArgIter *it)
{
	static const OptDef defs[] = {
		{"timeout", 0, true, OPT_TIMEOUT},
		{"json", 0, false, OPT_JSON},
		COMMON_OPTS,
		END_OPTS
	};
	static const char *sql =
		"SELECT r.id::text, r.status, row_to_json(r)::text"
		" FROM stellapack.pack_run_wait(run_id => $1,"
		" timeout => $2::interval) r";
	bool		json = false;
	bool		has_timeout = false;
	double		timeout = 0;
	const char *run_arg = NULL;
	long long	deadline = 0;
	PGresult   *res = NULL;
	const char *status;
	int			rc;
	const char *value;
	int			id;

	while ((id = next_arg(it, defs, &value)) != OPT_END)
	{
		char	   *end;

		if (handle_common_option(it, id, value))
			continue;
		switch (id)
		{
			case OPT_TIMEOUT:
				errno = 0;
				timeout = strtod(value, &end);
				if (*value == '\0' || *end != '\0' || errno != 0 ||
					!isfinite(timeout) || timeout < 0 || timeout > 1e9)
					usage_error(it, "invalid --timeout value \"%s\": "
								"expected a number of seconds", value);
				has_timeout = true;
				break;
			case OPT_JSON:
				json = true;
				break;
			case OPT_POSITIONAL:
				set_operand(it, &run_arg, value, "RUN_ID");
				break;
		}
	}
	if (run_arg == NULL)
		usage_error(it, "missing RUN_ID");

	connect_db();
	if (has_timeout)
		deadline = now_ms() + (long long) (timeout * 1000.0);
	for (;;)
	{
		double		chunk = WAIT_CHUNK_SECS;
		char		interval[64];
		const char *params[2];
		long long	started = now_ms();

		if (has_timeout && (deadline - started) / 1000.0 < chunk)
			chunk = (deadline - started) / 1000.0;
		if (chunk < 0)
			chunk = 0;
		snprintf(interval, sizeof(interval), "%.3f seconds", chunk);
		params[0] = run_arg;
		params[1] = interval;
		PQclear(res);
		res = run_query(sql, 2, params);
		if (PQntuples(res) == 0 || PQgetisnull(res, 0, 1))
		{
			PQclear(res);
			fatal("run \"%s\" does not exist", run_arg);
		}
		if (status_is_terminal(PQgetvalue(res, 0, 1)))
			break;
		if (has_timeout && now_ms() >= deadline)
			break;
		/* do not spin if the server returned early */
		if (now_ms() - started < WAIT_MIN_GAP_MS)
			sleep_ms(WAIT_MIN_GAP_MS);
	}

	status = PQgetvalue(res, 0, 1);
	print_run_status_row(res, json);
	if (status_is_terminal(status))
		rc = exit_for_status(status);
	else
	{
		report("timed out waiting for run %s (status: %s)",
			   PQgetvalue(res, 0, 0), status);
		rc = EXIT_TIMEOUT;
	}
	PQclear(res);
	flush_stdout();
	return rc;
}

/*
 * Print the help of the "cancel" command.
 */
static void
help_cancel(void)
{
	printf("Cancel a run and print its status.\n\n"
		   "Usage:\n"
		   "  %s cancel [OPTION]... RUN_ID\n\n"
		   "Options:\n"
		   "      --json           print the run as a JSON object\n"
		   "  -d, --dbname=CONNINFO  database name or connection string\n"
		   "  -h, --help           show this help, then exit\n\n"
		   "Exit status: 0 if the server accepted the request, 2 on "
		   "usage, connection\nor SQL errors.\n", progname);
}

/*
 * Implement "cancel": ask the server to cancel a run.
 */
static int
cmd_cancel(ArgIter *it)
{
	static const OptDef defs[] = {
		{"json", 0, false, OPT_JSON},
		COMMON_OPTS,
		END_OPTS
	};
	static const char *sql =
		"SELECT r.id::text, r.status, row_to_json(r)::text"
		" FROM stellapack.pack_run_cancel(run_id => $1) r";
	bool		json = false;
	const char *run_arg = NULL;
	const char *params[1];
	PGresult   *res;
	const char *value;
	int			id;

	while ((id = next_arg(it, defs, &value)) != OPT_END)
	{
		if (handle_common_option(it, id, value))
			continue;
		switch (id)
		{
			case OPT_JSON:
				json = true;
				break;
			case OPT_POSITIONAL:
				set_operand(it, &run_arg, value, "RUN_ID");
				break;
		}
	}
	if (run_arg == NULL)
		usage_error(it, "missing RUN_ID");

	connect_db();
	params[0] = run_arg;
	res = run_query(sql, 1, params);
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 1))
	{
		PQclear(res);
		fatal("run \"%s\" does not exist", run_arg);
	}
	print_run_status_row(res, json);
	PQclear(res);
	flush_stdout();
	return EXIT_OK;
}

/*
 * Print the help of the program as a whole.
 */
static void
help_main(void)
{
	const Command *c;

	printf("%s is the command-line client of the stellapack extension.\n\n"
		   "Usage:\n"
		   "  %s [OPTION]... COMMAND [ARG]...\n\n"
		   "Commands:\n", progname, progname);
	for (c = commands; c->name != NULL; c++)
		printf("  %-8s %s\n", c->name, c->summary);
	printf("\nOptions (also accepted after the command):\n"
		   "  -d, --dbname=CONNINFO  database name or connection string\n"
		   "  -h, --help             show this help, then exit\n"
		   "  -V, --version          show the version, then exit\n\n"
		   "Unset connection parameters come from the libpq environment "
		   "variables\n(PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, "
		   "PGSERVICE, ...).\n"
		   "Colour is used only when standard output is a terminal and "
		   "NO_COLOR is unset.\n\n"
		   "Run \"%s COMMAND --help\" for the options of a command.\n",
		   progname);
}

/*
 * Implement "help": show the help of a command, or of the program.
 */
static int
cmd_help(ArgIter *it)
{
	static const OptDef defs[] = {COMMON_OPTS, END_OPTS};
	const char *name = NULL;
	const Command *cmd;
	const char *value;
	int			id;

	while ((id = next_arg(it, defs, &value)) != OPT_END)
	{
		if (handle_common_option(it, id, value))
			continue;
		if (id == OPT_POSITIONAL)
			set_operand(it, &name, value, "COMMAND");
	}
	if (name == NULL)
	{
		help_main();
		return EXIT_OK;
	}
	cmd = find_command(name);
	if (cmd == NULL)
		usage_error(it, "unknown command \"%s\"", name);
	cmd->help();
	return EXIT_OK;
}

/*
 * Print the help of the "help" command.
 */
static void
help_help(void)
{
	printf("Show the help of a command.\n\n"
		   "Usage:\n"
		   "  %s help [COMMAND]\n", progname);
}

/*
 * Look a command up by name; NULL stands for the program's own help.
 */
static const Command *
find_command(const char *name)
{
	static const Command main_help = {NULL, NULL, help_main, NULL};
	const Command *c;

	if (name == NULL)
		return &main_help;
	for (c = commands; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/*
 * Parse the options before the command, then hand over to the command.
 */
int
main(int argc, char **argv)
{
	static const OptDef defs[] = {
		COMMON_OPTS,
		{"version", 'V', false, OPT_VERSION},
		END_OPTS
	};
	ArgIter		it;
	const Command *cmd = NULL;
	const char *value;
	int			id;
	int			rc;

	memset(&it, 0, sizeof(it));
	it.argc = argc;
	it.argv = argv;
	it.index = 1;

	while (cmd == NULL && (id = next_arg(&it, defs, &value)) != OPT_END)
	{
		if (handle_common_option(&it, id, value))
			continue;
		if (id == OPT_VERSION)
		{
			printf("%s %s\n", progname, STELLAPACK_VERSION);
			return EXIT_OK;
		}
		/* the first operand is the command */
		cmd = find_command(value);
		if (cmd == NULL)
			usage_error(&it, "unknown command \"%s\"", value);
	}
	if (cmd == NULL)
		usage_error(&it, "no command given");

	it.command = cmd->name;
	use_color = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	rc = cmd->run(&it);
	finish_and_exit(rc);
}
