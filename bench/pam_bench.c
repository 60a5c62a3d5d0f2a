/*
 * pam_bench: times N complete PAM authentications in one process.
 *
 *   pam_bench SERVICE USER PASSWORD RHOST N
 *
 * Each iteration is pam_start + pam_set_item(PAM_RHOST) + pam_authenticate + pam_end, which is
 * what a host such as Dovecot's auth worker does per login (libpam loads the service's modules in
 * pam_start and unloads them in pam_end). The conversation answers every hidden prompt with
 * PASSWORD. One line per iteration on stdout: "<pam result code> <nanoseconds>".
 * RHOST "-" leaves PAM_RHOST unset.
 */
#define _POSIX_C_SOURCE 200809L
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *password;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	(void)data;
	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	struct pam_response *r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			r[i].resp = strdup(password);
			if (r[i].resp == NULL) {
				for (int j = 0; j < i; j++)
					free(r[j].resp);
				free(r);
				return PAM_BUF_ERR;
			}
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s SERVICE USER PASSWORD RHOST N\n", argv[0]);
		return 2;
	}
	const char *service = argv[1], *user = argv[2], *rhost = argv[4];
	password = argv[3];
	long n = strtol(argv[5], NULL, 10);
	if (n < 1 || n > 100000) {
		fprintf(stderr, "N must be between 1 and 100000\n");
		return 2;
	}
	struct pam_conv c = { conv, NULL };
	for (long i = 0; i < n; i++) {
		pam_handle_t *pamh = NULL;
		long long t0 = now_ns();
		int rc = pam_start(service, user, &c, &pamh);
		if (rc == PAM_SUCCESS && strcmp(rhost, "-") != 0)
			rc = pam_set_item(pamh, PAM_RHOST, rhost);
		if (rc == PAM_SUCCESS)
			rc = pam_authenticate(pamh, PAM_SILENT);
		if (pamh != NULL)
			pam_end(pamh, rc);
		long long t1 = now_ns();
		printf("%d %lld\n", rc, t1 - t0);
	}
	return 0;
}
