/* One sender's SRTP protect, done here on the CPU's AES, carry-less multiply and
 * SHA instructions (relay/webrtc/_srtp_protect.c), for the profiles viewers
 * negotiate: AEAD_AES_128_GCM and AEAD_AES_256_GCM (RFC 7714; aiortc's first
 * choices) and AES_CM_128_HMAC_SHA1_80 (RFC 3711; Chromium's unless it enables GCM).
 *
 * libsrtp 2 through OpenSSL 3 costs a viewer's packet several microseconds in the
 * node, most of it set-up per call (OpenSSL's parameter passing, libsrtp's stream
 * lookup and replay window) rather than the cipher; this does the same protect,
 * byte for byte, from a few cache lines of state. */
#ifndef SRTP_PROTECT_H
#define SRTP_PROTECT_H

#include <stddef.h>
#include <stdint.h>

/* The profiles, by libsrtp's (and pylibsrtp's) numbers. */
#define SRTP_AES128_CM_SHA1_80 1
#define SRTP_AEAD_AES_128_GCM 7
#define SRTP_AEAD_AES_256_GCM 8
#define SRTP_MAX_TAG 16

typedef struct {
    int profile;
    unsigned char keys[15][16];  /* the session key, expanded */
    int rounds;                  /* 10 (AES-128) or 14 (AES-256) */
    unsigned char salt[14];      /* the session salt: 12 bytes (GCM) or 14 (CM) */
    unsigned char powers[4][16]; /* GCM: GHASH's key h, bytes reversed, and h^2 to h^4 */
    uint32_t inner[5], outer[5]; /* CM: HMAC-SHA1's states after its key's blocks */
    int tag;                     /* the tag's length: 16 (GCM) or 10 (CM) */
    uint32_t ssrc, roc;          /* the stream's, and its rollover counter */
    unsigned int seq;            /* the last packet's sequence number */
    int started;                 /* 1 once a packet was protected */
} srtp_sender;

/* 1 if this CPU (and this build) protects `profile` here, else 0. */
int srtp_sender_available(int profile);

/* From the DTLS-SRTP master key and salt of `profile` (`length` bytes: 28 or 44
 * for GCM, 30 for CM): 0, or -1 for another length or profile, or no support. */
int srtp_sender_init(srtp_sender *s, int profile, const unsigned char *master, size_t length);

/* Protects the RTP packet at `rtp` (`*length` bytes) in place as srtp_protect does,
 * its tag after it (s->tag more bytes, at least 4, must be there): 0, or libsrtp's
 * codes: 2 (bad_param) for a packet too short for its header or of another SSRC,
 * 10 (replay_fail) for a sequence number that does not come after the last. */
int srtp_sender_protect(void *s, void *rtp, int *length);

/* Its keys wiped. */
void srtp_sender_wipe(srtp_sender *s);

/* The same for a packet protected before (a retransmission without RTX): its
 * sequence number must not come after the last; the stream's state is unchanged. */
int srtp_sender_protect_again(void *s, void *rtp, int *length);

#endif
