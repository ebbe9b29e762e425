/*-------------------------------------------------------------------------
 *
 * fuzz_manifest.c
 *	  libFuzzer target for the manifest parser and the duration and name
 *	  helpers.
 *
 * Besides crashes, leaks and undefined behaviour (found by the sanitizers)
 * it checks the properties the server relies on, and aborts if one fails:
 *
 *	- an error always has a kind, a non-empty message and printable ASCII
 *	  message and detail;
 *	- a success has a canonical text whose digest is its SHA-256, which
 *	  parses again to exactly itself, and a topological order that is a
 *	  permutation of the jobs with every job after the jobs it needs;
 *	- a duration that parses formats to a text that parses to the same
 *	  value.
 *
 * Build and run with "make -C test/unit fuzz FUZZ_SECONDS=60".
 *
 * IDENTIFICATION
 *	  test/fuzz/fuzz_manifest.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "sha256.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Stop the run with a message; libFuzzer saves the input as a crash.
 */
static void
fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_manifest: property violated: %s\n", what);
	abort();
}

/*
 * Tell whether s holds only printable ASCII.
 */
static int
fuzz_printable(const char *s, size_t max)
{
	size_t		i;

	for (i = 0; i < max && s[i] != '\0'; i++)
	{
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	}
	return i < max;				/* must be NUL-terminated within max */
}

/*
 * Check the properties of a failed parse.
 */
static void
fuzz_check_error(const ManifestError *err)
{
	if (err->kind != MANIFEST_ERR_SYNTAX &&
		err->kind != MANIFEST_ERR_INVALID &&
		err->kind != MANIFEST_ERR_TOO_LARGE &&
		err->kind != MANIFEST_ERR_NOMEM)
		fuzz_fail("error kind");
	if (err->message[0] == '\0')
		fuzz_fail("empty message");
	if (!fuzz_printable(err->message, sizeof(err->message)) ||
		!fuzz_printable(err->detail, sizeof(err->detail)))
		fuzz_fail("message not printable ASCII");
	if (err->line < 0 || err->column < 0 ||
		(err->kind != MANIFEST_ERR_SYNTAX && (err->line || err->column)))
		fuzz_fail("line and column");
}

/*
 * Check the properties of a successful parse.
 */
static void
fuzz_check_manifest(const Manifest *m)
{
	char		hex[65];
	ManifestError err;
	Manifest   *again;
	int		   *position;
	int			i;
	int			k;

	if (m->canonical == NULL || strlen(m->canonical) != m->canonical_len)
		fuzz_fail("canonical length");
	sha256_hex(m->canonical, m->canonical_len, hex);
	if (strcmp(hex, m->digest) != 0)
		fuzz_fail("digest");
	if (m->n_jobs < 1 || m->n_jobs > MANIFEST_MAX_JOBS ||
		m->max_parallel < 1 || m->max_parallel > MANIFEST_MAX_PARALLEL ||
		m->timeout_ms < -1 || m->timeout_ms == 0 ||
		m->timeout_ms > MANIFEST_MAX_TIMEOUT_MS)
		fuzz_fail("top-level ranges");

	/* the canonical text is a fixed point */
	again = manifest_parse(m->canonical, m->canonical_len, &err);
	if (again == NULL)
		fuzz_fail("canonical text does not parse");
	if (again->canonical_len != m->canonical_len ||
		memcmp(again->canonical, m->canonical, m->canonical_len) != 0)
		fuzz_fail("canonical text is not a fixed point");
	manifest_free(again);

	/* topological order */
	position = malloc(sizeof(int) * (size_t) m->n_jobs);
	if (position == NULL)
		fuzz_fail("out of memory in fuzzer");
	for (i = 0; i < m->n_jobs; i++)
		position[i] = -1;
	for (i = 0; i < m->n_jobs; i++)
	{
		int			j = m->topo_order[i];

		if (j < 0 || j >= m->n_jobs || position[j] >= 0)
			fuzz_fail("topological order is not a permutation");
		position[j] = i;
	}
	for (i = 0; i < m->n_jobs; i++)
	{
		const ManifestJob *job = &m->jobs[i];

		if (!manifest_valid_name(job->name) || job->spec == NULL ||
			job->spec[0] != '{' ||
			(job->kind == MANIFEST_JOB_SQL) != (job->command != NULL) ||
			(job->kind == MANIFEST_JOB_EXTERNAL) != (job->queue != NULL) ||
			job->retries < 0 || job->retries > MANIFEST_MAX_RETRIES ||
			job->retry_delay_ms < 0 ||
			job->retry_delay_ms > MANIFEST_MAX_RETRY_DELAY_MS ||
			job->timeout_ms < -1 || job->timeout_ms == 0 ||
			job->timeout_ms > MANIFEST_MAX_TIMEOUT_MS)
			fuzz_fail("job fields");
		for (k = 0; k < job->n_needs; k++)
		{
			int			dep = job->needs_index[k];

			if (dep < 0 || dep >= m->n_jobs || dep == i ||
				strcmp(m->jobs[dep].name, job->needs[k]) != 0)
				fuzz_fail("needs index");
			if (position[dep] >= position[i])
				fuzz_fail("job placed before a job it needs");
		}
	}
	free(position);
}

/*
 * Run the duration and name helpers on a NUL-terminated prefix of the
 * input.
 */
static void
fuzz_helpers(const uint8_t *data, size_t size)
{
	char		text[64];
	char		buf[MANIFEST_DURATION_BUFLEN];
	size_t		n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	int64_t		ms = -1;
	int64_t		back = -1;

	memcpy(text, data, n);
	text[n] = '\0';
	if (manifest_parse_duration(text, &ms))
	{
		if (ms < 0 || manifest_format_duration(ms, buf, sizeof(buf)) < 0 ||
			!manifest_parse_duration(buf, &back) || back != ms)
			fuzz_fail("duration round trip");
	}
	(void) manifest_valid_name(text);
}

/*
 * libFuzzer entry point: parse the input as a manifest and check the
 * result, whichever way it goes.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ManifestError err;
	Manifest   *m;

	m = manifest_parse((const char *) data, size, &err);
	if (m == NULL)
		fuzz_check_error(&err);
	else
	{
		if (err.kind != MANIFEST_ERR_NONE)
			fuzz_fail("error set on success");
		fuzz_check_manifest(m);
		manifest_free(m);
	}

	fuzz_helpers(data, size);
	return 0;
}
