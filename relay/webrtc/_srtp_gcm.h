/* SRTP's AEAD_AES_128_GCM and AEAD_AES_256_GCM (RFC 7714) for one sender's stream,
 * on the CPU's AES and carry-less multiply instructions (relay/webrtc/_srtp_gcm.c).
 *
 * libsrtp 2 through OpenSSL 3 costs a viewer's packet several microseconds in the
 * node, most of it set-up per call (OpenSSL's parameter passing, libsrtp's stream
 * lookup and replay window) rather than the cipher; this does the same protect,
 * byte for byte, from a few cache lines of state. */
#ifndef SRTP_GCM_H
#define SRTP_GCM_H

#include <stddef.h>
#include <stdint.h>

#define SRTP_GCM_TAG 16

typedef struct {
    unsigned char keys[15][16]; /* the session key, expanded */
    int rounds;                 /* 10 (AES-128) or 14 (AES-256) */
    unsigned char powers[4][16]; /* GHASH's key h, bytes reversed, and h^2 to h^4 */
    unsigned char salt[12];     /* the session salt */
    uint32_t ssrc, roc;         /* the stream's, and its rollover counter */
    unsigned int seq;           /* the last packet's sequence number */
    int started;                /* 1 once a packet was protected */
} srtp_gcm;

/* 1 if this CPU has what srtp_gcm needs (and this build has it), else 0. */
int srtp_gcm_available(void);

/* From the DTLS-SRTP master key and salt (`length` 28 or 44: a 16 or 32 byte
 * key, then a 12 byte salt): 0, or -1 for another length or no support. */
int srtp_gcm_init(srtp_gcm *g, const unsigned char *master, size_t length);

/* Protects the RTP packet at `rtp` (`*length` bytes) in place as srtp_protect does,
 * its tag after it (SRTP_GCM_TAG more bytes must be there): 0, or libsrtp's codes:
 * 2 (bad_param) for a packet too short for its header or of another SSRC, 10
 * (replay_fail) for a sequence number that does not come after the last. */
int srtp_gcm_protect(void *g, void *rtp, int *length);

/* The same for a packet protected before (a retransmission without RTX): its
 * sequence number must not come after the last; the stream's state is unchanged. */
int srtp_gcm_protect_again(void *g, void *rtp, int *length);

#endif
