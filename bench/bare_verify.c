/*
 * bare_verify: the least a process that checks one password with Argon2id can do, as the
 * reference for apppw-checkpassword's per-attempt overhead (bench section 1): initialise
 * libsodium, compute one Argon2id with apppw's default parameters (m=19456 KiB, t=2, p=1)
 * over the password read from file descriptor 3, exit 0. No config, no database, no
 * self-test, no reply program.
 */
#include <sodium.h>
#include <unistd.h>

int main(void)
{
	unsigned char out[32];
	char pw[512];
	const unsigned char salt[crypto_pwhash_argon2id_SALTBYTES] = "apppw-bare-salt";
	ssize_t n = read(3, pw, sizeof pw);
	if (n < 0 || sodium_init() < 0)
		return 1;
	if (crypto_pwhash_argon2id(out, sizeof out, pw, (unsigned long long)n, salt, 2,
				   (size_t)19456 * 1024, crypto_pwhash_argon2id_ALG_ARGON2ID13) != 0)
		return 1;
	return 0;
}
