/*-------------------------------------------------------------------------
 *
 * manifest.h
 *	  Parse, validate and canonicalise stellapack pack manifests.
 *
 * A pack manifest is a JSON object describing a set of jobs and the
 * dependencies between them.  This module turns manifest text into a
 * validated Manifest structure, a canonical JSON text (same meaning, same
 * bytes) and the SHA-256 digest of that text.  It is plain C on top of
 * jansson and uses no PostgreSQL headers, so that it can be unit-tested
 * and fuzzed on its own; everything it returns is allocated with malloc
 * and released by manifest_free().  docs/manifest.md describes the format.
 *
 * The module keeps no state between calls and never prints anything.
 * While jansson parses, its malloc is briefly wrapped (to tell allocation
 * failures from syntax errors), so manifest_parse() must not run in two
 * threads at once; PostgreSQL backends are single-threaded.
 *
 * IDENTIFICATION
 *	  src/manifest.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STELLAPACK_MANIFEST_H
#define STELLAPACK_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of the format; docs/manifest.md states the same numbers. */
#define MANIFEST_MAX_BYTES			1048576 /* manifest text, in bytes */
#define MANIFEST_MAX_JOBS			1000
#define MANIFEST_MAX_NAME_LEN		63	/* job, queue and pack names */
#define MANIFEST_MAX_DESCRIPTION	4096	/* bytes of UTF-8 */
#define MANIFEST_MAX_PARALLEL		1000
#define MANIFEST_MAX_RETRIES		100
#define MANIFEST_MAX_TIMEOUT_MS		INT64_C(604800000)	/* 7 days */
#define MANIFEST_MAX_RETRY_DELAY_MS INT64_C(86400000)	/* 1 day */
#define MANIFEST_DEFAULT_RETRY_DELAY_MS INT64_C(1000)
#define MANIFEST_MAX_JSON_DEPTH		2048	/* jansson's parser limit */

/* Room for any duration in normal form: "106751991167d7h12m55s807ms". */
#define MANIFEST_DURATION_BUFLEN	32

/* The detail message to use with any "invalid ... name" error. */
#define MANIFEST_NAME_RULES_DETAIL \
	"Names are 1 to 63 characters: lower-case letters, digits, \"_\" " \
	"and \"-\", starting with a letter or digit."

typedef enum ManifestErrorKind
{
	MANIFEST_ERR_NONE = 0,
	MANIFEST_ERR_SYNTAX,		/* malformed JSON, duplicate keys, bad UTF-8 */
	MANIFEST_ERR_INVALID,		/* any semantic problem */
	MANIFEST_ERR_TOO_LARGE,		/* text longer than MANIFEST_MAX_BYTES */
	MANIFEST_ERR_NOMEM			/* malloc failed */
} ManifestErrorKind;

/*
 * What went wrong.  message and detail are always NUL-terminated and
 * contain only printable ASCII: any other character taken from the input
 * is shown as a JSON-style escape, so they can be handed to ereport() in
 * any server encoding.
 */
typedef struct ManifestError
{
	ManifestErrorKind kind;
	int			line;			/* 1-based; 0 when not applicable */
	int			column;			/* 1-based; 0 when not applicable */
	char		message[512];	/* primary: lower case, no final period */
	char		detail[512];	/* full sentence(s), or empty */
} ManifestError;

typedef enum ManifestJobKind
{
	MANIFEST_JOB_SQL = 0,
	MANIFEST_JOB_EXTERNAL
} ManifestJobKind;

typedef struct ManifestJob
{
	char	   *name;
	ManifestJobKind kind;
	char	   *command;		/* sql jobs only, else NULL */
	char	   *queue;			/* external jobs only, else NULL */
	char	   *spec;			/* canonical JSON object text; "{}" for sql */
	char	  **needs;			/* names of the jobs this one needs, in the
								 * order given */
	int		   *needs_index;	/* the same jobs as indexes into jobs[] */
	int			n_needs;
	int64_t		timeout_ms;		/* -1 = no limit */
	int			retries;
	int64_t		retry_delay_ms;
} ManifestJob;

typedef struct Manifest
{
	char	   *description;	/* "" when not given */
	int			max_parallel;
	bool		fail_fast;
	int64_t		timeout_ms;		/* -1 = no limit */
	ManifestJob *jobs;			/* in manifest order */
	int			n_jobs;
	int		   *topo_order;		/* n_jobs job indexes, every job after the
								 * jobs it needs, ties broken by manifest
								 * order */
	char	   *canonical;		/* canonical JSON text, NUL-terminated */
	size_t		canonical_len;	/* strlen(canonical) */
	char		digest[65];		/* sha256 of canonical, lower-case hex */
} Manifest;

/*
 * Parse and validate len bytes of manifest text (UTF-8, need not be
 * NUL-terminated).  Returns a new Manifest, or NULL with *err filled in.
 * err may be NULL if the caller does not care why.
 */
extern Manifest *manifest_parse(const char *text, size_t len,
								ManifestError *err);

/* Release a Manifest and everything it points to; NULL is allowed. */
extern void manifest_free(Manifest *m);

/* Is s a valid job, queue or pack name? */
extern bool manifest_valid_name(const char *s);

/*
 * Parse a duration string such as "1h30m" or "500ms" into milliseconds.
 * Returns false, leaving *ms_out alone, if s is not a valid duration.
 */
extern bool manifest_parse_duration(const char *s, int64_t *ms_out);

/*
 * Write ms (>= 0) in normal form, such as "1m30s" or "0s", into buf.
 * Returns the length written, or -1 if ms is negative or buf is too small
 * (then buf holds "" if buflen > 0).  MANIFEST_DURATION_BUFLEN is always
 * enough.
 */
extern int	manifest_format_duration(int64_t ms, char *buf, size_t buflen);

/* "sql" or "external". */
extern const char *manifest_job_kind_name(ManifestJobKind kind);

#endif							/* STELLAPACK_MANIFEST_H */
