/*-------------------------------------------------------------------------
 *
 * manifest.c
 *	  Parse, validate and canonicalise stellapack pack manifests.
 *
 * manifest_parse() works in four passes over the input:
 *
 *	1. jansson parses the text (duplicate keys rejected, depth limited to
 *	   2048 by jansson itself);
 *	2. the top-level object and every job are checked key by key, filling
 *	   in defaults, and job names go into an open-addressing hash table;
 *	3. every "needs" entry is resolved through that table, and Kahn's
 *	   algorithm, with a binary heap of ready jobs, produces a topological
 *	   order (or finds a cycle, which a walk along unfinished jobs names);
 *	4. the canonical text is written from the validated structure, with
 *	   the free-form "spec" objects written by an iterative writer that
 *	   sorts object keys, and hashed with SHA-256.
 *
 * Every pass is linear or n log n in the size of the input, none recurses
 * on the input, and all memory comes from malloc: on any error everything
 * allocated so far is released through manifest_free().
 *
 * IDENTIFICATION
 *	  src/manifest.c
 *
 *-------------------------------------------------------------------------
 */
#include "manifest.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sha256.h"

/*
 * The unit tests build this file with MANIFEST_TEST_ALLOCATOR defined so
 * that they can make any single allocation fail.  The server and the
 * fuzzer use plain malloc.
 */
#ifdef MANIFEST_TEST_ALLOCATOR
extern void *manifest_test_malloc(size_t size);
extern void *manifest_test_realloc(void *ptr, size_t size);
extern void manifest_test_free(void *ptr);
#define manifest_malloc_raw(sz)			manifest_test_malloc(sz)
#define manifest_realloc_raw(p, sz)		manifest_test_realloc(p, sz)
#define manifest_free_raw(p)			manifest_test_free(p)
#else
#define manifest_malloc_raw(sz)			malloc(sz)
#define manifest_realloc_raw(p, sz)		realloc(p, sz)
#define manifest_free_raw(p)			free(p)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MANIFEST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MANIFEST_PRINTF(f, a)
#endif

/* Longest escaped text shown between quotes in a message. */
#define MANIFEST_QUOTE_MAX		80
#define MANIFEST_QUOTE_BUFLEN	(MANIFEST_QUOTE_MAX + 8)

/* Room for `job "<63 chars>"` or `job #1000`. */
#define MANIFEST_REF_BUFLEN		(MANIFEST_QUOTE_BUFLEN + 8)

#define MANIFEST_DURATION_DETAIL \
	"A duration is one or more <integer><unit> parts with units d, h, " \
	"m, s and ms in that order, such as \"1h30m\" or \"500ms\", or a " \
	"non-negative integer number of seconds."

#define MANIFEST_TOP_KEYS_DETAIL \
	"The keys allowed at the top level are description, fail_fast, " \
	"jobs, max_parallel and timeout."

#define MANIFEST_JOB_KEYS_DETAIL \
	"The keys allowed in a job are command, kind, name, needs, queue, " \
	"retries, retry_delay, spec and timeout."

static const char *const manifest_top_keys[] = {
	"description", "fail_fast", "jobs", "max_parallel", "timeout", NULL
};

static const char *const manifest_job_keys[] = {
	"command", "kind", "name", "needs", "queue", "retries", "retry_delay",
	"spec", "timeout", NULL
};

/* Growable output buffer; "failed" latches the first allocation failure. */
typedef struct ManifestBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		failed;
} ManifestBuf;

/* One member of a JSON object, for writing members in key order. */
typedef struct ManifestMember
{
	const char *key;
	json_t	   *value;
} ManifestMember;

/* An array or object the JSON writer is in the middle of. */
typedef struct ManifestFrame
{
	json_t	   *node;
	ManifestMember *members;	/* sorted members, objects only */
	size_t		n;				/* number of elements or members */
	size_t		next;			/* index of the next one to write */
} ManifestFrame;

/* State shared by the validation passes. */
typedef struct ManifestParser
{
	Manifest   *m;
	ManifestError *err;
	int		   *slots;			/* job name hash table, -1 = free slot */
	size_t		slot_mask;		/* table size - 1, a power of two */
} ManifestParser;


/* ----------------------------------------------------------------
 *		Memory
 * ----------------------------------------------------------------
 */

/*
 * Allocate size bytes, treating a request for zero bytes as one byte so
 * that a NULL result always means failure.
 */
static void *
manifest_malloc(size_t size)
{
	return manifest_malloc_raw(size > 0 ? size : 1);
}

/*
 * Allocate an array of n elements of the given size, all bytes zero, or
 * return NULL if that fails or the size overflows.
 */
static void *
manifest_calloc(size_t n, size_t size)
{
	void	   *p;

	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	p = manifest_malloc(n * size);
	if (p != NULL)
		memset(p, 0, n * size > 0 ? n * size : 1);
	return p;
}

/*
 * Release memory from manifest_malloc() or manifest_calloc(); NULL is
 * allowed.
 */
static void
manifest_free_mem(void *p)
{
	if (p != NULL)
		manifest_free_raw(p);
}

/*
 * Copy len bytes of s into a new NUL-terminated string, or return NULL if
 * memory runs out.
 */
static char *
manifest_strndup(const char *s, size_t len)
{
	char	   *copy;

	if (len == SIZE_MAX)
		return NULL;
	copy = manifest_malloc(len + 1);
	if (copy == NULL)
		return NULL;
	if (len > 0)
		memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}


/* ----------------------------------------------------------------
 *		Output buffer
 * ----------------------------------------------------------------
 */

/*
 * Make room for extra more bytes plus a terminating NUL, doubling the
 * buffer as needed.  Returns false, and marks the buffer failed, if memory
 * runs out.
 */
static bool
manifest_buf_reserve(ManifestBuf *b, size_t extra)
{
	size_t		need;
	size_t		newcap;
	char	   *newdata;

	if (b->failed)
		return false;
	if (extra > SIZE_MAX - 1 - b->len)
	{
		b->failed = true;
		return false;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return true;

	newcap = b->cap > 0 ? b->cap : 256;
	while (newcap < need)
	{
		if (newcap > SIZE_MAX / 2)
		{
			newcap = need;
			break;
		}
		newcap *= 2;
	}
	newdata = manifest_realloc_raw(b->data, newcap);
	if (newdata == NULL)
	{
		b->failed = true;
		return false;
	}
	b->data = newdata;
	b->cap = newcap;
	return true;
}

/*
 * Append len bytes to the buffer, keeping it NUL-terminated.
 */
static void
manifest_buf_append(ManifestBuf *b, const char *s, size_t len)
{
	if (!manifest_buf_reserve(b, len))
		return;
	if (len > 0)
		memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
}

/*
 * Append a NUL-terminated string to the buffer.
 */
static void
manifest_buf_puts(ManifestBuf *b, const char *s)
{
	manifest_buf_append(b, s, strlen(s));
}

/*
 * Append a single character to the buffer.
 */
static void
manifest_buf_putc(ManifestBuf *b, char c)
{
	manifest_buf_append(b, &c, 1);
}


/* ----------------------------------------------------------------
 *		Errors and message text
 * ----------------------------------------------------------------
 */

/*
 * Reset an error to "no error".
 */
static void
manifest_clear_error(ManifestError *err)
{
	err->kind = MANIFEST_ERR_NONE;
	err->line = 0;
	err->column = 0;
	err->message[0] = '\0';
	err->detail[0] = '\0';
}

/*
 * Record an error of the given kind with a formatted primary message and
 * no detail.  Always returns false, so callers can "return manifest_fail".
 */
static bool MANIFEST_PRINTF(3, 4)
manifest_fail(ManifestError *err, ManifestErrorKind kind,
			  const char *fmt,...)
{
	va_list		ap;

	manifest_clear_error(err);
	err->kind = kind;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return false;
}

/*
 * Set the detail message of the error recorded last.
 */
static void MANIFEST_PRINTF(2, 3)
manifest_detail(ManifestError *err, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}

/*
 * Record an out-of-memory error.  Always returns false.
 */
static bool
manifest_nomem(ManifestError *err)
{
	return manifest_fail(err, MANIFEST_ERR_NOMEM, "out of memory");
}

/*
 * Decode one UTF-8 sequence of at most len bytes at s.  Returns its length
 * and sets *cp, or returns 0 if the bytes are not a valid, shortest-form
 * encoding of a Unicode scalar value.
 */
static int
manifest_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t	c;
	int			n;
	int			i;

	if (len == 0)
		return 0;
	if (s[0] < 0x80)
	{
		*cp = s[0];
		return 1;
	}
	else if (s[0] >= 0xc2 && s[0] <= 0xdf)
	{
		n = 2;
		c = s[0] & 0x1f;
	}
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
	{
		n = 3;
		c = s[0] & 0x0f;
	}
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
	{
		n = 4;
		c = s[0] & 0x07;
	}
	else
		return 0;

	if ((size_t) n > len)
		return 0;
	for (i = 1; i < n; i++)
	{
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}

	/* Reject overlong forms, surrogates and values past U+10FFFF. */
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
		(c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	*cp = c;
	return n;
}

/*
 * Write len bytes of s into out (outsize bytes) as printable ASCII: '"' and
 * '\' are escaped if json_quotes, control characters and non-ASCII
 * characters become JSON-style \uXXXX escapes, bytes that are not UTF-8
 * become \xNN.  If the result would not fit in max bytes, as much as fits
 * is kept and "..." is added; max is lowered to outsize - 4 if need be.
 */
static void
manifest_escape(char *out, size_t outsize, size_t max,
				const char *s, size_t len, bool json_quotes)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t		o = 0;
	size_t		i = 0;

	if (max + 4 > outsize)
		max = outsize > 4 ? outsize - 4 : 0;

	while (i < len)
	{
		char		piece[16];
		size_t		plen;
		size_t		used = 1;
		uint32_t	cp;
		unsigned char c = u[i];

		if ((c == '"' || c == '\\') && json_quotes)
		{
			piece[0] = '\\';
			piece[1] = (char) c;
			plen = 2;
		}
		else if (c >= 0x20 && c < 0x7f)
		{
			piece[0] = (char) c;
			plen = 1;
		}
		else if (c == '\n')
			plen = (size_t) snprintf(piece, sizeof(piece), "\\n");
		else if (c == '\t')
			plen = (size_t) snprintf(piece, sizeof(piece), "\\t");
		else if (c < 0x80)
			plen = (size_t) snprintf(piece, sizeof(piece), "\\u%04X", c);
		else
		{
			int			n = manifest_utf8_decode(u + i, len - i, &cp);

			if (n == 0)
				plen = (size_t) snprintf(piece, sizeof(piece), "\\x%02X", c);
			else if (cp < 0x10000)
			{
				plen = (size_t) snprintf(piece, sizeof(piece),
										 "\\u%04X", (unsigned) cp);
				used = (size_t) n;
			}
			else
			{
				uint32_t	v = cp - 0x10000;

				plen = (size_t) snprintf(piece, sizeof(piece),
										 "\\u%04X\\u%04X",
										 (unsigned) (0xd800 + (v >> 10)),
										 (unsigned) (0xdc00 + (v & 0x3ff)));
				used = (size_t) n;
			}
		}

		if (o + plen > max)
		{
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, piece, plen);
		o += plen;
		i += used;
	}
	out[o] = '\0';
}

/*
 * Format a value taken from the input as a double-quoted, escaped and
 * possibly shortened string for use in a message.  out must have
 * MANIFEST_QUOTE_BUFLEN bytes; it is returned for convenience.
 */
static const char *
manifest_quote(char *out, const char *s, size_t len)
{
	out[0] = '"';
	manifest_escape(out + 1, MANIFEST_QUOTE_BUFLEN - 2, MANIFEST_QUOTE_MAX,
					s, len, true);
	strcat(out, "\"");
	return out;
}

/*
 * Describe a job for messages: `job "name"` when the job has a usable name,
 * otherwise `job #N`, N counting from 1 in manifest order.
 */
static const char *
manifest_job_ref(char *out, const char *name, int index)
{
	char		quoted[MANIFEST_QUOTE_BUFLEN];

	if (name != NULL)
		snprintf(out, MANIFEST_REF_BUFLEN, "job %s",
				 manifest_quote(quoted, name, strlen(name)));
	else
		snprintf(out, MANIFEST_REF_BUFLEN, "job #%d", index + 1);
	return out;
}


/* ----------------------------------------------------------------
 *		Names and durations
 * ----------------------------------------------------------------
 */

/*
 * Tell whether s is a valid job, queue or pack name: 1 to 63 bytes of
 * lower-case ASCII letters, digits, '_' and '-', the first being a letter
 * or a digit.
 */
bool
manifest_valid_name(const char *s)
{
	size_t		i;

	if (s == NULL)
		return false;
	for (i = 0; s[i] != '\0'; i++)
	{
		char		c = s[i];

		if (i >= MANIFEST_MAX_NAME_LEN)
			return false;
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if ((c == '_' || c == '-') && i > 0)
			continue;
		return false;
	}
	return i > 0;
}

/* Duration units from largest to smallest, as written and parsed. */
static const struct
{
	const char *suffix;
	int64_t		ms;
}			manifest_units[] =
{
	{"d", INT64_C(86400000)},
	{"h", INT64_C(3600000)},
	{"m", INT64_C(60000)},
	{"s", INT64_C(1000)},
	{"ms", INT64_C(1)}
};

#define MANIFEST_N_UNITS	5

/*
 * Parse a duration: one or more parts made of a decimal integer and a unit
 * (d, h, m, s, ms), each unit at most once and in that order.  Stores the
 * total in milliseconds; returns false on bad syntax or int64 overflow.
 */
bool
manifest_parse_duration(const char *s, int64_t *ms_out)
{
	const char *p = s;
	int64_t		total = 0;
	int			next_unit = 0;	/* first unit still allowed */

	if (s == NULL || *s == '\0')
		return false;

	while (*p != '\0')
	{
		int64_t		value = 0;
		int			unit;

		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
		{
			int			digit = *p - '0';

			if (value > (INT64_MAX - digit) / 10)
				return false;
			value = value * 10 + digit;
			p++;
		}

		if (p[0] == 'm' && p[1] == 's')
			unit = 4;
		else if (p[0] == 'd')
			unit = 0;
		else if (p[0] == 'h')
			unit = 1;
		else if (p[0] == 'm')
			unit = 2;
		else if (p[0] == 's')
			unit = 3;
		else
			return false;
		p += strlen(manifest_units[unit].suffix);

		if (unit < next_unit)
			return false;
		next_unit = unit + 1;

		if (value > (INT64_MAX - total) / manifest_units[unit].ms)
			return false;
		total += value * manifest_units[unit].ms;
	}

	*ms_out = total;
	return true;
}

/*
 * Write a duration in normal form: largest units first, parts that are zero
 * left out, "0s" for zero.  Returns the length, or -1 (and "" when there
 * is room for it) if ms is negative or buf is too small.
 */
int
manifest_format_duration(int64_t ms, char *buf, size_t buflen)
{
	char		tmp[MANIFEST_DURATION_BUFLEN * 2];
	size_t		len = 0;
	int			u;

	if (buf == NULL || buflen == 0)
		return -1;
	buf[0] = '\0';
	if (ms < 0)
		return -1;

	if (ms == 0)
		len = (size_t) snprintf(tmp, sizeof(tmp), "0s");
	for (u = 0; u < MANIFEST_N_UNITS && ms > 0; u++)
	{
		int64_t		count = ms / manifest_units[u].ms;

		if (count == 0)
			continue;
		ms -= count * manifest_units[u].ms;
		len += (size_t) snprintf(tmp + len, sizeof(tmp) - len, "%lld%s",
								 (long long) count,
								 manifest_units[u].suffix);
	}

	if (len + 1 > buflen)
		return -1;
	memcpy(buf, tmp, len + 1);
	return (int) len;
}

/*
 * Return the name of a job kind as written in manifests.
 */
const char *
manifest_job_kind_name(ManifestJobKind kind)
{
	return kind == MANIFEST_JOB_EXTERNAL ? "external" : "sql";
}


/* ----------------------------------------------------------------
 *		Canonical JSON writer
 * ----------------------------------------------------------------
 */

/*
 * Write a JSON string literal.  '"', '\' and control characters are
 * escaped (with the short forms where JSON has them); everything else,
 * including non-ASCII UTF-8 and DEL, is copied as is.
 */
static void
manifest_write_string(ManifestBuf *b, const char *s, size_t len)
{
	size_t		i;
	size_t		run = 0;		/* start of bytes not yet copied */

	manifest_buf_putc(b, '"');
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		esc[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;

		manifest_buf_append(b, s + run, i - run);
		run = i + 1;
		switch (c)
		{
			case '"':
				manifest_buf_puts(b, "\\\"");
				break;
			case '\\':
				manifest_buf_puts(b, "\\\\");
				break;
			case '\b':
				manifest_buf_puts(b, "\\b");
				break;
			case '\f':
				manifest_buf_puts(b, "\\f");
				break;
			case '\n':
				manifest_buf_puts(b, "\\n");
				break;
			case '\r':
				manifest_buf_puts(b, "\\r");
				break;
			case '\t':
				manifest_buf_puts(b, "\\t");
				break;
			default:
				snprintf(esc, sizeof(esc), "\\u%04X", c);
				manifest_buf_puts(b, esc);
				break;
		}
	}
	manifest_buf_append(b, s + run, len - run);
	manifest_buf_putc(b, '"');
}

/*
 * Write a real number in the shortest of %.15g, %.16g and %.17g that reads
 * back as the same double, with ".0" added when that looks like an integer
 * so that the value stays a real when parsed again.
 */
static void
manifest_write_real(ManifestBuf *b, double d)
{
	char		tmp[64];
	int			prec;
	char	   *c;

	if (!isfinite(d))
	{
		/* jansson never produces these, but stay valid JSON anyway */
		manifest_buf_puts(b, "null");
		return;
	}

	for (prec = 15; prec <= 17; prec++)
	{
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}

	/* A locale with a decimal comma must not leak into the output. */
	for (c = tmp; *c != '\0'; c++)
	{
		if (*c == ',')
			*c = '.';
	}
	if (strpbrk(tmp, ".eE") == NULL)
		strcat(tmp, ".0");
	manifest_buf_puts(b, tmp);
}

/*
 * Write a JSON value that is neither an array nor an object.
 */
static void
manifest_write_scalar(ManifestBuf *b, json_t *v)
{
	char		tmp[32];

	switch (json_typeof(v))
	{
		case JSON_STRING:
			manifest_write_string(b, json_string_value(v),
								  json_string_length(v));
			break;
		case JSON_INTEGER:
			snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT,
					 json_integer_value(v));
			manifest_buf_puts(b, tmp);
			break;
		case JSON_REAL:
			manifest_write_real(b, json_real_value(v));
			break;
		case JSON_TRUE:
			manifest_buf_puts(b, "true");
			break;
		case JSON_FALSE:
			manifest_buf_puts(b, "false");
			break;
		default:
			manifest_buf_puts(b, "null");
			break;
	}
}

/*
 * qsort comparator putting object members in byte order of their keys,
 * which for UTF-8 is Unicode code point order.
 */
static int
manifest_member_cmp(const void *a, const void *b)
{
	return strcmp(((const ManifestMember *) a)->key,
				  ((const ManifestMember *) b)->key);
}

/*
 * Push an array or object onto the writer's stack and write its opening
 * bracket.  For an object the members are collected and sorted by key.
 * Returns false if memory runs out.
 */
static bool
manifest_push_frame(ManifestBuf *b, ManifestFrame **stack, size_t *depth,
					size_t *cap, json_t *node)
{
	ManifestFrame *frame;

	if (*depth == *cap)
	{
		size_t		newcap = *cap > 0 ? *cap * 2 : 16;
		ManifestFrame *grown;

		if (newcap > SIZE_MAX / sizeof(ManifestFrame))
			return false;
		grown = manifest_realloc_raw(*stack, newcap * sizeof(ManifestFrame));
		if (grown == NULL)
			return false;
		*stack = grown;
		*cap = newcap;
	}

	frame = &(*stack)[*depth];
	frame->node = node;
	frame->members = NULL;
	frame->next = 0;

	if (json_is_object(node))
	{
		void	   *iter;
		size_t		i = 0;

		frame->n = json_object_size(node);
		if (frame->n > 0)
		{
			frame->members = manifest_calloc(frame->n,
											 sizeof(ManifestMember));
			if (frame->members == NULL)
				return false;
			for (iter = json_object_iter(node);
				 iter != NULL && i < frame->n;
				 iter = json_object_iter_next(node, iter))
			{
				frame->members[i].key = json_object_iter_key(iter);
				frame->members[i].value = json_object_iter_value(iter);
				i++;
			}
			frame->n = i;
			qsort(frame->members, frame->n, sizeof(ManifestMember),
				  manifest_member_cmp);
		}
		manifest_buf_putc(b, '{');
	}
	else
	{
		frame->n = json_array_size(node);
		manifest_buf_putc(b, '[');
	}
	(*depth)++;
	return true;
}

/*
 * Write any JSON value compactly with object keys sorted, using an explicit
 * stack instead of recursion so that nesting depth costs heap, not C
 * stack.  Returns false if memory runs out.
 */
static bool
manifest_write_json(ManifestBuf *b, json_t *value)
{
	ManifestFrame *stack = NULL;
	size_t		depth = 0;
	size_t		cap = 0;
	bool		ok = true;

	if (!json_is_object(value) && !json_is_array(value))
	{
		manifest_write_scalar(b, value);
		return !b->failed;
	}

	if (!manifest_push_frame(b, &stack, &depth, &cap, value))
		ok = false;

	while (ok && depth > 0 && !b->failed)
	{
		ManifestFrame *top = &stack[depth - 1];
		json_t	   *child;

		if (top->next >= top->n)
		{
			manifest_buf_putc(b, json_is_object(top->node) ? '}' : ']');
			manifest_free_mem(top->members);
			top->members = NULL;
			depth--;
			continue;
		}

		if (top->next > 0)
			manifest_buf_putc(b, ',');
		if (json_is_object(top->node))
		{
			ManifestMember *mem = &top->members[top->next];

			manifest_write_string(b, mem->key, strlen(mem->key));
			manifest_buf_putc(b, ':');
			child = mem->value;
		}
		else
			child = json_array_get(top->node, top->next);
		top->next++;

		/* "top" may dangle after a push; it is not used again below. */
		if (json_is_object(child) || json_is_array(child))
		{
			if (!manifest_push_frame(b, &stack, &depth, &cap, child))
				ok = false;
		}
		else
			manifest_write_scalar(b, child);
	}

	while (depth > 0)
		manifest_free_mem(stack[--depth].members);
	manifest_free_mem(stack);
	return ok && !b->failed;
}

/*
 * Write a duration in milliseconds as a JSON string in normal form, or
 * null for -1 (no limit).
 */
static void
manifest_write_duration(ManifestBuf *b, int64_t ms)
{
	char		tmp[MANIFEST_DURATION_BUFLEN];

	if (ms < 0)
	{
		manifest_buf_puts(b, "null");
		return;
	}
	manifest_format_duration(ms, tmp, sizeof(tmp));
	manifest_write_string(b, tmp, strlen(tmp));
}


/* ----------------------------------------------------------------
 *		JSON parsing
 * ----------------------------------------------------------------
 */

/*
 * jansson reports some of its allocation failures as syntax errors (a
 * failed string copy looks like a bad token), so while it parses for us
 * its malloc is wrapped to notice failures.  These hold the caller's
 * allocator and what the wrapper saw; they are only used for the duration
 * of one json_loadb() call, which makes this module unsafe to call from
 * several threads at once (PostgreSQL backends have one).
 */
static json_malloc_t manifest_json_prev_malloc = NULL;
static bool manifest_json_alloc_failed = false;

/*
 * jansson's malloc while manifest_json_loadb() runs: the caller's malloc,
 * recording any failure.
 */
static void *
manifest_json_malloc(size_t size)
{
	void	   *p = manifest_json_prev_malloc(size);

	if (p == NULL)
		manifest_json_alloc_failed = true;
	return p;
}

/*
 * json_loadb() with jansson's allocation failures noticed.  Returns NULL
 * and sets *nomem if any allocation failed, whatever jansson reported.
 */
static json_t *
manifest_json_loadb(const char *text, size_t len, size_t flags,
					json_error_t *jerr, bool *nomem)
{
	json_malloc_t prev_malloc;
	json_free_t prev_free;
	json_t	   *result;

	json_get_alloc_funcs(&prev_malloc, &prev_free);
	manifest_json_prev_malloc = prev_malloc;
	manifest_json_alloc_failed = false;
	json_set_alloc_funcs(manifest_json_malloc, prev_free);

	result = json_loadb(text, len, flags, jerr);

	json_set_alloc_funcs(prev_malloc, prev_free);
	*nomem = manifest_json_alloc_failed;
	if (*nomem && result != NULL)
	{
		json_decref(result);
		result = NULL;
	}
	return result;
}

/*
 * Find the key that jansson reported as duplicated.  jansson gives no key
 * name, but its error position is just past the closing quote of the
 * repeated key, so walk back to the opening quote (one not preceded by an
 * odd number of backslashes) and decode the literal in between.  Returns
 * the key as a new jansson string, or NULL (with *nomem set if memory ran
 * out) if that does not work out.
 */
static json_t *
manifest_find_duplicate_key(const char *text, size_t len, size_t pos,
							bool *nomem)
{
	size_t		start;
	json_error_t jerr;

	*nomem = false;
	if (pos < 2 || pos > len || text[pos - 1] != '"')
		return NULL;

	start = pos - 1;
	while (start > 0)
	{
		size_t		backslashes = 0;

		start--;
		if (text[start] != '"')
			continue;
		while (backslashes < start &&
			   text[start - backslashes - 1] == '\\')
			backslashes++;
		if (backslashes % 2 == 0)
			return manifest_json_loadb(text + start, pos - start,
									   JSON_DECODE_ANY, &jerr, nomem);
	}
	return NULL;
}

/*
 * Parse the manifest text with jansson.  On failure, fill err with a
 * syntax error carrying jansson's line and column (or an out-of-memory
 * error) and return NULL.
 */
static json_t *
manifest_load_json(const char *text, size_t len, ManifestError *err)
{
	json_error_t jerr;
	json_t	   *root;
	enum json_error_code code;
	int			line;
	int			column;
	bool		nomem;
	char		why[sizeof(jerr.text) * 2];

	memset(&jerr, 0, sizeof(jerr));
	root = manifest_json_loadb(text, len,
							   JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
							   &jerr, &nomem);
	if (root != NULL)
		return root;

	/* Some allocation failures also leave jansson's error text empty. */
	code = json_error_code(&jerr);
	if (nomem || jerr.text[0] == '\0' || code == json_error_out_of_memory)
	{
		manifest_nomem(err);
		return NULL;
	}

	line = jerr.line > 0 ? jerr.line : 0;
	column = line > 0 ? (jerr.column > 0 ? jerr.column : 1) : 0;

	if (code == json_error_duplicate_key)
	{
		json_t	   *key = manifest_find_duplicate_key(text, len,
													  (size_t) jerr.position,
													  &nomem);
		char		quoted[MANIFEST_QUOTE_BUFLEN];

		if (nomem)
		{
			manifest_nomem(err);
			return NULL;
		}
		if (json_is_string(key))
			manifest_fail(err, MANIFEST_ERR_SYNTAX,
						  "duplicate key %s in manifest",
						  manifest_quote(quoted, json_string_value(key),
										 json_string_length(key)));
		else
			manifest_fail(err, MANIFEST_ERR_SYNTAX,
						  "duplicate key in manifest");
		json_decref(key);
		manifest_detail(err,
						"A key may appear only once in each JSON object; "
						"the repeated key ends at line %d, column %d.",
						line, column);
	}
	else
	{
		manifest_escape(why, sizeof(why), sizeof(why) - 4, jerr.text,
						strnlen(jerr.text, sizeof(jerr.text)), false);
		if (line > 0)
			manifest_fail(err, MANIFEST_ERR_SYNTAX,
						  "invalid manifest JSON at line %d, column %d: %s",
						  line, column, why);
		else
			manifest_fail(err, MANIFEST_ERR_SYNTAX,
						  "invalid manifest JSON: %s", why);
		if (code == json_error_stack_overflow)
			manifest_detail(err,
							"Arrays and objects may be nested at most %d "
							"levels deep.", MANIFEST_MAX_JSON_DEPTH);
		else if (code == json_error_invalid_utf8)
			manifest_detail(err, "A manifest must be valid UTF-8.");
	}
	err->line = line;
	err->column = column;
	return NULL;
}


/* ----------------------------------------------------------------
 *		Value checks
 * ----------------------------------------------------------------
 */

/*
 * Check that every key of obj is in the NULL-terminated list allowed;
 * "where" names the object in the message.
 */
static bool
manifest_check_keys(ManifestError *err, json_t *obj,
					const char *const *allowed, const char *where,
					const char *allowed_detail)
{
	void	   *iter;

	for (iter = json_object_iter(obj); iter != NULL;
		 iter = json_object_iter_next(obj, iter))
	{
		const char *key = json_object_iter_key(iter);
		const char *const *a;
		char		quoted[MANIFEST_QUOTE_BUFLEN];

		for (a = allowed; *a != NULL; a++)
		{
			if (strcmp(key, *a) == 0)
				break;
		}
		if (*a == NULL)
		{
			manifest_fail(err, MANIFEST_ERR_INVALID, "unknown key %s in %s",
						  manifest_quote(quoted, key, strlen(key)), where);
			manifest_detail(err, "%s", allowed_detail);
			return false;
		}
	}
	return true;
}

/*
 * Read an integer from min to max.  Only JSON integers are accepted: not
 * reals such as 1.0, nor strings.
 */
static bool
manifest_get_int(ManifestError *err, json_t *value, const char *key,
				 const char *where, int min, int max, int *out)
{
	if (!json_is_integer(value) ||
		json_integer_value(value) < min || json_integer_value(value) > max)
		return manifest_fail(err, MANIFEST_ERR_INVALID,
							 "invalid value for \"%s\" in %s: must be an "
							 "integer from %d to %d", key, where, min, max);
	*out = (int) json_integer_value(value);
	return true;
}

/*
 * Read a duration: a duration string, a non-negative integer number of
 * seconds, or (if allow_null) null, which gives -1.  The result must lie
 * in [min_ms, max_ms]; range_detail explains that range.
 */
static bool
manifest_get_duration(ManifestError *err, json_t *value, const char *key,
					  const char *where, bool allow_null, int64_t min_ms,
					  int64_t max_ms, const char *range_detail, int64_t *out)
{
	char		shown[MANIFEST_QUOTE_BUFLEN];
	int64_t		ms = 0;

	if (json_is_null(value) && allow_null)
	{
		*out = -1;
		return true;
	}

	if (json_is_string(value))
	{
		manifest_quote(shown, json_string_value(value),
					   json_string_length(value));
		if (!manifest_parse_duration(json_string_value(value), &ms))
		{
			manifest_fail(err, MANIFEST_ERR_INVALID,
						  "invalid duration %s for key \"%s\" in %s",
						  shown, key, where);
			manifest_detail(err, "%s", MANIFEST_DURATION_DETAIL);
			return false;
		}
	}
	else if (json_is_integer(value))
	{
		json_int_t	secs = json_integer_value(value);

		snprintf(shown, sizeof(shown), "%" JSON_INTEGER_FORMAT, secs);
		if (secs < 0 || secs > INT64_MAX / 1000)
		{
			manifest_fail(err, MANIFEST_ERR_INVALID,
						  "invalid duration %s for key \"%s\" in %s",
						  shown, key, where);
			manifest_detail(err, "%s", MANIFEST_DURATION_DETAIL);
			return false;
		}
		ms = (int64_t) secs * 1000;
	}
	else
		return manifest_fail(err, MANIFEST_ERR_INVALID,
							 "invalid value for \"%s\" in %s: must be a "
							 "duration string%s an integer number of "
							 "seconds%s", key, where,
							 allow_null ? "," : " or",
							 allow_null ? " or null" : "");

	if (ms < min_ms || ms > max_ms)
	{
		manifest_fail(err, MANIFEST_ERR_INVALID,
					  "invalid duration %s for key \"%s\" in %s",
					  shown, key, where);
		manifest_detail(err, "%s", range_detail);
		return false;
	}
	*out = ms;
	return true;
}

/*
 * Tell whether a string has at least one character that is not ASCII
 * white space.
 */
static bool
manifest_has_content(const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (strchr(" \t\n\r\f\v", s[i]) == NULL)
			return true;
	}
	return false;
}


/* ----------------------------------------------------------------
 *		Job name table
 * ----------------------------------------------------------------
 */

/*
 * FNV-1a hash of a NUL-terminated name.
 */
static uint32_t
manifest_hash_name(const char *s)
{
	uint32_t	h = 2166136261u;

	for (; *s != '\0'; s++)
	{
		h ^= (unsigned char) *s;
		h *= 16777619u;
	}
	return h;
}

/*
 * Look a name up in the job name table.  Returns the job index, or -1 if
 * there is no job of that name.  Strings that are not valid names are
 * rejected before hashing, which also bounds the cost of a lookup.
 */
static int
manifest_lookup_job(ManifestParser *p, const char *name)
{
	size_t		slot;

	if (!manifest_valid_name(name))
		return -1;
	slot = manifest_hash_name(name) & p->slot_mask;
	while (p->slots[slot] >= 0)
	{
		if (strcmp(p->m->jobs[p->slots[slot]].name, name) == 0)
			return p->slots[slot];
		slot = (slot + 1) & p->slot_mask;
	}
	return -1;
}

/*
 * Add job number index, whose name is already set, to the name table.
 * Returns -1, or the index of an earlier job of the same name (then
 * nothing is added).
 */
static int
manifest_insert_job(ManifestParser *p, int index)
{
	const char *name = p->m->jobs[index].name;
	size_t		slot = manifest_hash_name(name) & p->slot_mask;

	while (p->slots[slot] >= 0)
	{
		if (strcmp(p->m->jobs[p->slots[slot]].name, name) == 0)
			return p->slots[slot];
		slot = (slot + 1) & p->slot_mask;
	}
	p->slots[slot] = index;
	return -1;
}


/* ----------------------------------------------------------------
 *		Manifest and job validation
 * ----------------------------------------------------------------
 */

/*
 * Check job number index, given as obj, and fill in m->jobs[index] with
 * its values or their defaults.
 */
static bool
manifest_check_job(ManifestParser *p, json_t *obj, int index)
{
	ManifestError *err = p->err;
	ManifestJob *job = &p->m->jobs[index];
	char		ref[MANIFEST_REF_BUFLEN];
	char		quoted[MANIFEST_QUOTE_BUFLEN];
	json_t	   *name;
	json_t	   *v;
	int			other;

	if (!json_is_object(obj))
		return manifest_fail(err, MANIFEST_ERR_INVALID,
							 "job #%d must be a JSON object", index + 1);

	/* Use the name in messages as soon as it is known to be usable. */
	name = json_object_get(obj, "name");
	manifest_job_ref(ref,
					 json_is_string(name) &&
					 manifest_valid_name(json_string_value(name)) ?
					 json_string_value(name) : NULL,
					 index);

	if (!manifest_check_keys(err, obj, manifest_job_keys, ref,
							 MANIFEST_JOB_KEYS_DETAIL))
		return false;

	/* name */
	if (name == NULL)
		return manifest_fail(err, MANIFEST_ERR_INVALID,
							 "%s has no \"name\"", ref);
	if (!json_is_string(name))
		return manifest_fail(err, MANIFEST_ERR_INVALID,
							 "invalid value for \"name\" in %s: must be a "
							 "string", ref);
	if (!manifest_valid_name(json_string_value(name)))
	{
		manifest_fail(err, MANIFEST_ERR_INVALID, "invalid job name %s",
					  manifest_quote(quoted, json_string_value(name),
									 json_string_length(name)));
		manifest_detail(err, "%s", MANIFEST_NAME_RULES_DETAIL);
		return false;
	}
	job->name = manifest_strndup(json_string_value(name),
								 json_string_length(name));
	if (job->name == NULL)
		return manifest_nomem(err);
	other = manifest_insert_job(p, index);
	if (other >= 0)
	{
		manifest_fail(err, MANIFEST_ERR_INVALID, "duplicate job name %s",
					  manifest_quote(quoted, job->name, strlen(job->name)));
		manifest_detail(err, "Jobs #%d and #%d have the same name.",
						other + 1, index + 1);
		return false;
	}

	/* kind */
	v = json_object_get(obj, "kind");
	if (v == NULL || (json_is_string(v) &&
					  strcmp(json_string_value(v), "sql") == 0))
		job->kind = MANIFEST_JOB_SQL;
	else if (json_is_string(v) &&
			 strcmp(json_string_value(v), "external") == 0)
		job->kind = MANIFEST_JOB_EXTERNAL;
	else
		return manifest_fail(err, MANIFEST_ERR_INVALID,
							 "invalid value for \"kind\" in %s: must be "
							 "\"sql\" or \"external\"", ref);

	/* command, queue and spec depend on the kind */
	if (job->kind == MANIFEST_JOB_SQL)
	{
		if (json_object_get(obj, "queue") != NULL ||
			json_object_get(obj, "spec") != NULL)
		{
			manifest_fail(err, MANIFEST_ERR_INVALID,
						  "key \"%s\" is not allowed in %s of kind \"sql\"",
						  json_object_get(obj, "queue") != NULL ?
						  "queue" : "spec", ref);
			manifest_detail(err, "\"queue\" and \"spec\" are for jobs of "
							"kind \"external\".");
			return false;
		}
		v = json_object_get(obj, "command");
		if (v == NULL)
			return manifest_fail(err, MANIFEST_ERR_INVALID,
								 "%s of kind \"sql\" has no \"command\"",
								 ref);
		if (!json_is_string(v))
			return manifest_fail(err, MANIFEST_ERR_INVALID,
								 "invalid value for \"command\" in %s: "
								 "must be a string", ref);
		if (!manifest_has_content(json_string_value(v),
								  json_string_length(v)))
			return manifest_fail(err, MANIFEST_ERR_INVALID,
								 "%s has an empty \"command\"", ref);
		job->command = manifest_strndup(json_string_value(v),
										json_string_length(v));
		job->spec = manifest_strndup("{}", 2);
		if (job->command == NULL || job->spec == NULL)
			return manifest_nomem(err);
	}
	else
	{
		ManifestBuf spec = {NULL, 0, 0, false};

		if (json_object_get(obj, "command") != NULL)
		{
			manifest_fail(err, MANIFEST_ERR_INVALID,
						  "key \"command\" is not allowed in %s of kind "
						  "\"external\"", ref);
			manifest_detail(err, "A job of kind \"external\" is described "
							"by \"queue\" and \"spec\".");
			return false;
		}
		v = json_object_get(obj, "queue");
		if (v == NULL)
			return manifest_fail(err, MANIFEST_ERR_INVALID,
								 "%s of kind \"external\" has no \"queue\"",
								 ref);
		if (!json_is_string(v))
			return manifest_fail(err, MANIFEST_ERR_INVALID,
								 "invalid value for \"queue\" in %s: must "
								 "be a string", ref);
		if (!manifest_valid_name(json_string_value(v)))
		{
			manifest_fail(err, MANIFEST_ERR_INVALID,
						  "invalid queue name %s in %s",
						  manifest_quote(quoted, json_string_value(v),
										 json_string_length(v)), ref);
			manifest_detail(err, "%s", MANIFEST_NAME_RULES_DETAIL);
			return false;
		}
		job->queue = manifest_strndup(json_string_value(v),
									  json_string_length(v));
		if (job->queue == NULL)
			return manifest_nomem(err);

		v = json_object_get(obj, "spec");
		if (v != NULL && !json_is_object(v))
			return manifest_fail(err, MANIFEST_ERR_INVALID,
								 "invalid value for \"spec\" in %s: must "
								 "be a JSON object", ref);
		if (v == NULL)
			manifest_buf_puts(&spec, "{}");
		if (v != NULL ? !manifest_write_json(&spec, v) : spec.failed)
		{
			manifest_free_mem(spec.data);
			return manifest_nomem(err);
		}
		job->spec = spec.data;
	}

	/* needs: names only for now, resolved once all jobs are known */
	v = json_object_get(obj, "needs");
	if (v != NULL)
	{
		size_t		n;
		size_t		i;

		if (!json_is_array(v))
			return manifest_fail(err, MANIFEST_ERR_INVALID,
								 "invalid value for \"needs\" in %s: must "
								 "be an array of job names", ref);
		n = json_array_size(v);
		if (n > MANIFEST_MAX_JOBS - 1)
		{
			manifest_fail(err, MANIFEST_ERR_INVALID,
						  "too many entries in \"needs\" in %s", ref);
			manifest_detail(err, "A job can need at most %d other jobs; "
							"this one lists %zu.", MANIFEST_MAX_JOBS - 1, n);
			return false;
		}
		for (i = 0; i < n; i++)
		{
			if (!json_is_string(json_array_get(v, i)))
				return manifest_fail(err, MANIFEST_ERR_INVALID,
									 "invalid value for \"needs\" in %s: "
									 "must be an array of job names", ref);
		}
		if (n > 0)
		{
			job->needs = manifest_calloc(n, sizeof(char *));
			if (job->needs == NULL)
				return manifest_nomem(err);
			job->n_needs = (int) n;
			for (i = 0; i < n; i++)
			{
				json_t	   *s = json_array_get(v, i);

				job->needs[i] = manifest_strndup(json_string_value(s),
												 json_string_length(s));
				if (job->needs[i] == NULL)
					return manifest_nomem(err);
			}
		}
	}

	/* timeout */
	job->timeout_ms = -1;
	v = json_object_get(obj, "timeout");
	if (v != NULL &&
		!manifest_get_duration(err, v, "timeout", ref, true, 1,
							   MANIFEST_MAX_TIMEOUT_MS,
							   "A timeout must be greater than 0 and at "
							   "most 7d.", &job->timeout_ms))
		return false;

	/* retries */
	job->retries = 0;
	v = json_object_get(obj, "retries");
	if (v != NULL &&
		!manifest_get_int(err, v, "retries", ref, 0, MANIFEST_MAX_RETRIES,
						  &job->retries))
		return false;

	/* retry_delay */
	job->retry_delay_ms = MANIFEST_DEFAULT_RETRY_DELAY_MS;
	v = json_object_get(obj, "retry_delay");
	if (v != NULL &&
		!manifest_get_duration(err, v, "retry_delay", ref, false, 0,
							   MANIFEST_MAX_RETRY_DELAY_MS,
							   "A retry delay must be at most 1d.",
							   &job->retry_delay_ms))
		return false;

	return true;
}

/*
 * Check the top-level object and every job in it, filling in p->m.
 */
static bool
manifest_check_top(ManifestParser *p, json_t *root)
{
	ManifestError *err = p->err;
	Manifest   *m = p->m;
	json_t	   *v;
	json_t	   *jobs;
	size_t		n;
	size_t		nslots;
	size_t		i;

	if (!json_is_object(root))
	{
		manifest_fail(err, MANIFEST_ERR_INVALID,
					  "manifest must be a JSON object");
		manifest_detail(err, "The manifest text is a JSON %s.",
						json_is_array(root) ? "array" :
						json_is_string(root) ? "string" :
						json_is_number(root) ? "number" :
						json_is_boolean(root) ? "boolean" : "null");
		return false;
	}
	if (!manifest_check_keys(err, root, manifest_top_keys, "manifest",
							 MANIFEST_TOP_KEYS_DETAIL))
		return false;

	/* description */
	v = json_object_get(root, "description");
	if (v == NULL)
		m->description = manifest_strndup("", 0);
	else if (!json_is_string(v))
		return manifest_fail(err, MANIFEST_ERR_INVALID,
							 "invalid value for \"description\" in "
							 "manifest: must be a string");
	else if (json_string_length(v) > MANIFEST_MAX_DESCRIPTION)
	{
		manifest_fail(err, MANIFEST_ERR_INVALID,
					  "\"description\" in manifest is too long");
		manifest_detail(err, "A description is at most %d bytes; this one "
						"is %zu bytes.", MANIFEST_MAX_DESCRIPTION,
						json_string_length(v));
		return false;
	}
	else
		m->description = manifest_strndup(json_string_value(v),
										  json_string_length(v));
	if (m->description == NULL)
		return manifest_nomem(err);

	/* max_parallel */
	m->max_parallel = 1;
	v = json_object_get(root, "max_parallel");
	if (v != NULL &&
		!manifest_get_int(err, v, "max_parallel", "manifest", 1,
						  MANIFEST_MAX_PARALLEL, &m->max_parallel))
		return false;

	/* fail_fast */
	m->fail_fast = false;
	v = json_object_get(root, "fail_fast");
	if (v != NULL)
	{
		if (!json_is_boolean(v))
			return manifest_fail(err, MANIFEST_ERR_INVALID,
								 "invalid value for \"fail_fast\" in "
								 "manifest: must be true or false");
		m->fail_fast = json_is_true(v);
	}

	/* timeout */
	m->timeout_ms = -1;
	v = json_object_get(root, "timeout");
	if (v != NULL &&
		!manifest_get_duration(err, v, "timeout", "manifest", true, 1,
							   MANIFEST_MAX_TIMEOUT_MS,
							   "A timeout must be greater than 0 and at "
							   "most 7d.", &m->timeout_ms))
		return false;

	/* jobs */
	jobs = json_object_get(root, "jobs");
	if (jobs != NULL && !json_is_array(jobs))
		return manifest_fail(err, MANIFEST_ERR_INVALID,
							 "invalid value for \"jobs\" in manifest: must "
							 "be an array of job objects");
	n = jobs != NULL ? json_array_size(jobs) : 0;
	if (n == 0)
	{
		manifest_fail(err, MANIFEST_ERR_INVALID, "manifest has no jobs");
		manifest_detail(err, "\"jobs\" must list at least one job.");
		return false;
	}
	if (n > MANIFEST_MAX_JOBS)
	{
		manifest_fail(err, MANIFEST_ERR_INVALID, "manifest has too many jobs");
		manifest_detail(err, "A manifest has at most %d jobs; this one has "
						"%zu.", MANIFEST_MAX_JOBS, n);
		return false;
	}

	m->jobs = manifest_calloc(n, sizeof(ManifestJob));
	if (m->jobs == NULL)
		return manifest_nomem(err);
	m->n_jobs = (int) n;

	/* A table at least twice the job count keeps probe chains short. */
	for (nslots = 16; nslots < 2 * n; nslots *= 2)
		;
	p->slots = manifest_malloc(nslots * sizeof(int));
	if (p->slots == NULL)
		return manifest_nomem(err);
	for (i = 0; i < nslots; i++)
		p->slots[i] = -1;
	p->slot_mask = nslots - 1;

	for (i = 0; i < n; i++)
	{
		if (!manifest_check_job(p, json_array_get(jobs, i), (int) i))
			return false;
	}
	return true;
}


/* ----------------------------------------------------------------
 *		Dependency graph
 * ----------------------------------------------------------------
 */

/*
 * Turn every "needs" name into a job index, rejecting unknown names, a job
 * needing itself and a name listed twice by the same job.
 */
static bool
manifest_resolve_needs(ManifestParser *p)
{
	Manifest   *m = p->m;
	ManifestError *err = p->err;
	int		   *seen;			/* seen[k] == j: job j already needs k */
	int			j;

	seen = manifest_malloc((size_t) m->n_jobs * sizeof(int));
	if (seen == NULL)
		return manifest_nomem(err);
	for (j = 0; j < m->n_jobs; j++)
		seen[j] = -1;

	for (j = 0; j < m->n_jobs; j++)
	{
		ManifestJob *job = &m->jobs[j];
		char		ref[MANIFEST_REF_BUFLEN];
		char		quoted[MANIFEST_QUOTE_BUFLEN];
		int			k;

		if (job->n_needs == 0)
			continue;
		manifest_job_ref(ref, job->name, j);
		job->needs_index = manifest_malloc((size_t) job->n_needs *
										   sizeof(int));
		if (job->needs_index == NULL)
		{
			manifest_free_mem(seen);
			return manifest_nomem(err);
		}

		for (k = 0; k < job->n_needs; k++)
		{
			const char *need = job->needs[k];
			int			idx = manifest_lookup_job(p, need);

			manifest_quote(quoted, need, strlen(need));
			if (idx < 0)
				manifest_fail(err, MANIFEST_ERR_INVALID,
							  "%s needs unknown job %s", ref, quoted);
			else if (idx == j)
				manifest_fail(err, MANIFEST_ERR_INVALID,
							  "%s needs itself", ref);
			else if (seen[idx] == j)
				manifest_fail(err, MANIFEST_ERR_INVALID,
							  "%s lists %s more than once in \"needs\"",
							  ref, quoted);
			if (idx < 0 || idx == j || seen[idx] == j)
			{
				manifest_free_mem(seen);
				return false;
			}
			seen[idx] = j;
			job->needs_index[k] = idx;
		}
	}

	manifest_free_mem(seen);
	return true;
}

/*
 * Add a job index to a binary min-heap of n entries.
 */
static void
manifest_heap_push(int *heap, int *n, int value)
{
	int			i = (*n)++;

	while (i > 0 && heap[(i - 1) / 2] > value)
	{
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = value;
}

/*
 * Remove and return the smallest job index from a non-empty binary
 * min-heap of n entries.
 */
static int
manifest_heap_pop(int *heap, int *n)
{
	int			top = heap[0];
	int			last = heap[--(*n)];
	int			i = 0;

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= *n)
			break;
		if (child + 1 < *n && heap[child + 1] < heap[child])
			child++;
		if (heap[child] >= last)
			break;
		heap[i] = heap[child];
		i = child;
	}
	if (*n > 0)
		heap[i] = last;
	return top;
}

/*
 * Name a dependency cycle among the jobs that Kahn's algorithm could not
 * order (those with pending[j] > 0).  Each such job needs at least one
 * other such job, so walking from the first of them along its first
 * unfinished need must come back to a job already on the walk; the part
 * from there on is a cycle.  It is reported starting from its job that
 * comes first in the manifest, each job followed by one it needs.
 */
static bool
manifest_report_cycle(ManifestParser *p, const int *pending)
{
	Manifest   *m = p->m;
	ManifestError *err = p->err;
	int		   *path;
	int		   *pos;
	int			len = 0;
	int			cur = -1;
	int			first;
	int			clen;
	int			rot;
	int			t;
	bool		cut = false;
	char		list[384];
	size_t		used = 0;

	path = manifest_malloc((size_t) m->n_jobs * sizeof(int));
	pos = manifest_malloc((size_t) m->n_jobs * sizeof(int));
	if (path == NULL || pos == NULL)
	{
		manifest_free_mem(path);
		manifest_free_mem(pos);
		return manifest_nomem(err);
	}
	for (t = 0; t < m->n_jobs; t++)
	{
		pos[t] = -1;
		if (cur < 0 && pending[t] > 0)
			cur = t;
	}

	while (cur >= 0 && pos[cur] < 0)
	{
		ManifestJob *job = &m->jobs[cur];
		int			next = -1;
		int			k;

		pos[cur] = len;
		path[len++] = cur;
		for (k = 0; k < job->n_needs && next < 0; k++)
		{
			if (pending[job->needs_index[k]] > 0)
				next = job->needs_index[k];
		}
		cur = next;
	}

	if (cur < 0)
	{
		/* cannot happen, but fail cleanly rather than crash */
		manifest_free_mem(path);
		manifest_free_mem(pos);
		return manifest_fail(err, MANIFEST_ERR_INVALID, "dependency cycle");
	}

	first = pos[cur];
	clen = len - first;
	rot = 0;
	for (t = 1; t < clen; t++)
	{
		if (path[first + t] < path[first + rot])
			rot = t;
	}

	list[0] = '\0';
	for (t = 0; t < clen; t++)
	{
		const char *name = m->jobs[path[first + (rot + t) % clen]].name;
		size_t		need = strlen(name) + 4;

		/* keep room for " -> ..." and " -> " plus the first name */
		if (used + need + 8 + 4 + MANIFEST_MAX_NAME_LEN + 1 > sizeof(list))
		{
			cut = true;
			used += (size_t) snprintf(list + used, sizeof(list) - used,
									  " -> ...");
			break;
		}
		used += (size_t) snprintf(list + used, sizeof(list) - used, "%s%s",
								  t > 0 ? " -> " : "", name);
	}
	snprintf(list + used, sizeof(list) - used, " -> %s",
			 m->jobs[path[first + rot]].name);

	manifest_fail(err, MANIFEST_ERR_INVALID, "dependency cycle: %s", list);
	if (cut)
		manifest_detail(err, "Each job in the cycle needs the next one; "
						"the cycle has %d jobs.", clen);
	else
		manifest_detail(err, "Each job in the cycle needs the next one.");

	manifest_free_mem(path);
	manifest_free_mem(pos);
	return false;
}

/*
 * Order the jobs with Kahn's algorithm so that every job comes after the
 * jobs it needs, always taking the ready job that comes first in the
 * manifest.  Fails, naming a cycle, if there is no such order.
 */
static bool
manifest_sort_jobs(ManifestParser *p)
{
	Manifest   *m = p->m;
	int			n = m->n_jobs;
	size_t		n_edges = 0;
	int		   *pending;		/* needs not yet placed, per job */
	int		   *dep_start;		/* dependents of j: dep_list[dep_start[j]
								 * .. dep_start[j + 1] - 1] */
	int		   *dep_list;
	int		   *heap;
	int			heap_n = 0;
	int			placed = 0;
	int			j;
	bool		ok;

	for (j = 0; j < n; j++)
		n_edges += (size_t) m->jobs[j].n_needs;

	m->topo_order = manifest_malloc((size_t) n * sizeof(int));
	pending = manifest_malloc((size_t) n * sizeof(int));
	dep_start = manifest_calloc((size_t) n + 1, sizeof(int));
	dep_list = manifest_malloc(n_edges * sizeof(int));
	heap = manifest_malloc((size_t) n * sizeof(int));
	if (m->topo_order == NULL || pending == NULL || dep_start == NULL ||
		dep_list == NULL || heap == NULL)
	{
		ok = manifest_nomem(p->err);
		goto done;
	}

	/* Build the reverse adjacency lists in compressed form. */
	for (j = 0; j < n; j++)
	{
		int			k;

		pending[j] = m->jobs[j].n_needs;
		for (k = 0; k < m->jobs[j].n_needs; k++)
			dep_start[m->jobs[j].needs_index[k] + 1]++;
	}
	for (j = 0; j < n; j++)
		dep_start[j + 1] += dep_start[j];
	for (j = 0; j < n; j++)
		heap[j] = dep_start[j]; /* heap is unused yet: fill cursors */
	for (j = 0; j < n; j++)
	{
		int			k;

		for (k = 0; k < m->jobs[j].n_needs; k++)
			dep_list[heap[m->jobs[j].needs_index[k]]++] = j;
	}

	for (j = 0; j < n; j++)
	{
		if (pending[j] == 0)
			manifest_heap_push(heap, &heap_n, j);
	}
	while (heap_n > 0)
	{
		int			i = manifest_heap_pop(heap, &heap_n);
		int			e;

		m->topo_order[placed++] = i;
		for (e = dep_start[i]; e < dep_start[i + 1]; e++)
		{
			if (--pending[dep_list[e]] == 0)
				manifest_heap_push(heap, &heap_n, dep_list[e]);
		}
	}

	ok = placed == n ? true : manifest_report_cycle(p, pending);

done:
	manifest_free_mem(pending);
	manifest_free_mem(dep_start);
	manifest_free_mem(dep_list);
	manifest_free_mem(heap);
	return ok;
}


/* ----------------------------------------------------------------
 *		Canonical text
 * ----------------------------------------------------------------
 */

/*
 * Write the canonical text of a validated manifest and its digest.  Keys
 * are written in sorted order by hand; a job's spec is already canonical.
 */
static bool
manifest_build_canonical(Manifest *m, ManifestError *err)
{
	ManifestBuf b = {NULL, 0, 0, false};
	char		num[32];
	int			i;
	int			k;

	manifest_buf_puts(&b, "{\"description\":");
	manifest_write_string(&b, m->description, strlen(m->description));
	manifest_buf_puts(&b, ",\"fail_fast\":");
	manifest_buf_puts(&b, m->fail_fast ? "true" : "false");
	manifest_buf_puts(&b, ",\"jobs\":[");
	for (i = 0; i < m->n_jobs && !b.failed; i++)
	{
		ManifestJob *job = &m->jobs[i];

		manifest_buf_puts(&b, i > 0 ? ",{" : "{");
		if (job->kind == MANIFEST_JOB_SQL)
		{
			manifest_buf_puts(&b, "\"command\":");
			manifest_write_string(&b, job->command, strlen(job->command));
			manifest_buf_putc(&b, ',');
		}
		manifest_buf_puts(&b, "\"kind\":");
		manifest_write_string(&b, manifest_job_kind_name(job->kind),
							  strlen(manifest_job_kind_name(job->kind)));
		manifest_buf_puts(&b, ",\"name\":");
		manifest_write_string(&b, job->name, strlen(job->name));
		manifest_buf_puts(&b, ",\"needs\":[");
		for (k = 0; k < job->n_needs; k++)
		{
			if (k > 0)
				manifest_buf_putc(&b, ',');
			manifest_write_string(&b, job->needs[k], strlen(job->needs[k]));
		}
		manifest_buf_putc(&b, ']');
		if (job->kind == MANIFEST_JOB_EXTERNAL)
		{
			manifest_buf_puts(&b, ",\"queue\":");
			manifest_write_string(&b, job->queue, strlen(job->queue));
		}
		snprintf(num, sizeof(num), "%d", job->retries);
		manifest_buf_puts(&b, ",\"retries\":");
		manifest_buf_puts(&b, num);
		manifest_buf_puts(&b, ",\"retry_delay\":");
		manifest_write_duration(&b, job->retry_delay_ms);
		if (job->kind == MANIFEST_JOB_EXTERNAL)
		{
			manifest_buf_puts(&b, ",\"spec\":");
			manifest_buf_puts(&b, job->spec);
		}
		manifest_buf_puts(&b, ",\"timeout\":");
		manifest_write_duration(&b, job->timeout_ms);
		manifest_buf_putc(&b, '}');
	}
	snprintf(num, sizeof(num), "%d", m->max_parallel);
	manifest_buf_puts(&b, "],\"max_parallel\":");
	manifest_buf_puts(&b, num);
	manifest_buf_puts(&b, ",\"timeout\":");
	manifest_write_duration(&b, m->timeout_ms);
	manifest_buf_putc(&b, '}');

	if (b.failed)
	{
		manifest_free_mem(b.data);
		return manifest_nomem(err);
	}
	m->canonical = b.data;
	m->canonical_len = b.len;
	sha256_hex(m->canonical, m->canonical_len, m->digest);
	return true;
}


/* ----------------------------------------------------------------
 *		Entry points
 * ----------------------------------------------------------------
 */

/*
 * Parse, validate and canonicalise a manifest.  Returns NULL and fills
 * *err (when err is not NULL) if the text is not a valid manifest or
 * memory runs out; nothing is left allocated in that case.
 */
Manifest *
manifest_parse(const char *text, size_t len, ManifestError *err)
{
	ManifestError local_err;
	ManifestParser parser;
	json_t	   *root;
	Manifest   *m;
	bool		ok;

	if (err == NULL)
		err = &local_err;
	manifest_clear_error(err);

	if (len > MANIFEST_MAX_BYTES)
	{
		manifest_fail(err, MANIFEST_ERR_TOO_LARGE, "manifest is too large");
		manifest_detail(err, "A manifest is at most %d bytes; this one is "
						"%zu bytes.", MANIFEST_MAX_BYTES, len);
		return NULL;
	}
	if (text == NULL)
	{
		text = "";
		len = 0;
	}

	root = manifest_load_json(text, len, err);
	if (root == NULL)
		return NULL;

	m = manifest_calloc(1, sizeof(Manifest));
	if (m == NULL)
	{
		json_decref(root);
		manifest_nomem(err);
		return NULL;
	}

	parser.m = m;
	parser.err = err;
	parser.slots = NULL;
	parser.slot_mask = 0;

	ok = manifest_check_top(&parser, root) &&
		manifest_resolve_needs(&parser) &&
		manifest_sort_jobs(&parser) &&
		manifest_build_canonical(m, err);

	manifest_free_mem(parser.slots);
	json_decref(root);
	if (!ok)
	{
		manifest_free(m);
		return NULL;
	}
	return m;
}

/*
 * Release one job's strings and arrays (not the job itself, which lives
 * in the manifest's jobs array).
 */
static void
manifest_free_job(ManifestJob *job)
{
	int			k;

	manifest_free_mem(job->name);
	manifest_free_mem(job->command);
	manifest_free_mem(job->queue);
	manifest_free_mem(job->spec);
	if (job->needs != NULL)
	{
		for (k = 0; k < job->n_needs; k++)
			manifest_free_mem(job->needs[k]);
		manifest_free_mem(job->needs);
	}
	manifest_free_mem(job->needs_index);
}

/*
 * Release a manifest returned by manifest_parse(), or a partly built one
 * on an error path.  NULL is allowed.
 */
void
manifest_free(Manifest *m)
{
	int			i;

	if (m == NULL)
		return;
	manifest_free_mem(m->description);
	if (m->jobs != NULL)
	{
		for (i = 0; i < m->n_jobs; i++)
			manifest_free_job(&m->jobs[i]);
		manifest_free_mem(m->jobs);
	}
	manifest_free_mem(m->topo_order);
	manifest_free_mem(m->canonical);
	manifest_free_mem(m);
}
