/* SRTP protected here: see _srtp_protect.h.
 *
 * - Session keys come from the master key and salt by SRTP's key derivation
 *   (RFC 3711 4.3, AES in counter mode; RFC 7714 11: a 96-bit salt, zero padded).
 * - AES-GCM (RFC 7714 8): a packet's IV is the session salt XOR (0, SSRC, rollover
 *   counter, sequence number); its header is the additional data, its payload is
 *   encrypted and the 16-byte tag follows. GCM itself as NIST SP 800-38D; GHASH on
 *   bytes reversed, multiplied and reduced as in Intel's "Carry-Less
 *   Multiplication and Its Usage for Computing the GCM Mode" (algorithms 1 and 5).
 *   Four blocks at a time: their counters through AES side by side, their GHASH by
 *   h^4..h with one reduction.
 * - AES-CM with HMAC-SHA1 (RFC 3711 4.1.1, 4.2.1): the payload XOR AES's counter
 *   mode from the session salt XOR (SSRC, index); then HMAC-SHA1 over the packet and
 *   the rollover counter, its first 10 bytes the tag. SHA-1 on the SHA extensions,
 *   as Intel's sample code for them; HMAC's key blocks hashed once, at init.
 *
 * tests/relay/webrtc/test_srtp.py checks it against libsrtp, byte for byte (each
 * profile, every payload length about a block's edges, each header's shape,
 * rollover counters 0 to 2), and a viewer's libsrtp reads it.
 */
#define _DEFAULT_SOURCE /* explicit_bzero */
#include "_srtp_protect.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_HERE 1
#include <cpuid.h>
#include <immintrin.h>
#define TARGET __attribute__((target("aes,pclmul,sha,ssse3,sse4.1")))
#else
#define HAVE_HERE 0
#endif

enum { BAD_PARAM = 2, REPLAY_FAIL = 10, FAIL = 1 };

int
srtp_sender_available(int profile)
{
#if HAVE_HERE
    unsigned int a, b, c, d; /* CPUID: leaf 1 for AES, PCLMULQDQ, SSSE3, SSE4.1; 7 for SHA */
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int aes = (c >> 25 & 1) && (c >> 9 & 1) && (c >> 19 & 1);
    int pclmul = c >> 1 & 1;
    int sha = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 29 & 1);
    switch (profile) {
    case SRTP_AEAD_AES_128_GCM:
    case SRTP_AEAD_AES_256_GCM:
        return aes && pclmul;
    case SRTP_AES128_CM_SHA1_80:
        return aes && sha;
    }
#endif
    return 0;
}

#if HAVE_HERE

TARGET static inline __m128i
bswap(__m128i x)
{
    return _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

TARGET static __m128i
expand_step(__m128i key, __m128i assist)
{
    assist = _mm_shuffle_epi32(assist, 0xff);
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 8));
    return _mm_xor_si128(key, assist);
}

/* The odd round keys of AES-256: SubWord without RotWord, and no round constant. */
TARGET static __m128i
expand_odd(__m128i key, __m128i even)
{
    __m128i assist = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(even, 0), 0xaa);
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 8));
    return _mm_xor_si128(key, assist);
}

#define STEP128(i, rcon) k[i] = expand_step(k[i - 1], _mm_aeskeygenassist_si128(k[i - 1], rcon))
#define STEP256(i, rcon)                                                                      \
    k[i] = expand_step(k[i - 2], _mm_aeskeygenassist_si128(k[i - 1], rcon));                  \
    if (i + 1 < 15)                                                                           \
    k[i + 1] = expand_odd(k[i - 1], k[i])

/* AES's round keys from a 16 or 32 byte key: the number of rounds. */
TARGET static int
expand(unsigned char out[15][16], const unsigned char *key, size_t length)
{
    __m128i k[15];
    k[0] = _mm_loadu_si128((const __m128i *)key);
    if (length == 16) {
        STEP128(1, 0x01);
        STEP128(2, 0x02);
        STEP128(3, 0x04);
        STEP128(4, 0x08);
        STEP128(5, 0x10);
        STEP128(6, 0x20);
        STEP128(7, 0x40);
        STEP128(8, 0x80);
        STEP128(9, 0x1b);
        STEP128(10, 0x36);
    } else {
        k[1] = _mm_loadu_si128((const __m128i *)(key + 16));
        STEP256(2, 0x01);
        STEP256(4, 0x02);
        STEP256(6, 0x04);
        STEP256(8, 0x08);
        STEP256(10, 0x10);
        STEP256(12, 0x20);
        STEP256(14, 0x40);
    }
    int rounds = length == 16 ? 10 : 14;
    for (int i = 0; i <= rounds; i++)
        _mm_storeu_si128((__m128i *)out[i], k[i]);
    return rounds;
}

TARGET static inline __m128i
encrypt_block(const srtp_sender *g, __m128i x)
{
    x = _mm_xor_si128(x, _mm_loadu_si128((const __m128i *)g->keys[0]));
    for (int i = 1; i < g->rounds; i++)
        x = _mm_aesenc_si128(x, _mm_loadu_si128((const __m128i *)g->keys[i]));
    return _mm_aesenclast_si128(x, _mm_loadu_si128((const __m128i *)g->keys[g->rounds]));
}

/* Four blocks through AES side by side (counter mode's keystream). */
TARGET static inline void
encrypt4(const srtp_sender *g, __m128i c[4])
{
    __m128i k = _mm_loadu_si128((const __m128i *)g->keys[0]);
    for (int j = 0; j < 4; j++)
        c[j] = _mm_xor_si128(c[j], k);
    for (int r = 1; r < g->rounds; r++) {
        k = _mm_loadu_si128((const __m128i *)g->keys[r]);
        for (int j = 0; j < 4; j++)
            c[j] = _mm_aesenc_si128(c[j], k);
    }
    k = _mm_loadu_si128((const __m128i *)g->keys[g->rounds]);
    for (int j = 0; j < 4; j++)
        c[j] = _mm_aesenclast_si128(c[j], k);
}

/* a * b, carry-less, unreduced: the 256-bit product added to (hi, lo). */
TARGET static inline void
clmul(__m128i a, __m128i b, __m128i *lo, __m128i *mid, __m128i *hi)
{
    *lo = _mm_xor_si128(*lo, _mm_clmulepi64_si128(a, b, 0x00));
    *mid = _mm_xor_si128(*mid, _mm_clmulepi64_si128(a, b, 0x10));
    *mid = _mm_xor_si128(*mid, _mm_clmulepi64_si128(a, b, 0x01));
    *hi = _mm_xor_si128(*hi, _mm_clmulepi64_si128(a, b, 0x11));
}

/* A 256-bit product of bytes reversed, reduced into GCM's field (Intel's
 * algorithm 5: shifted left by one, as the inputs were reflected, then reduced
 * modulo x^128 + x^7 + x^2 + x + 1). */
TARGET static inline __m128i
reduce(__m128i lo, __m128i mid, __m128i hi)
{
    lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
    __m128i lo_carry = _mm_srli_epi32(lo, 31), hi_carry = _mm_srli_epi32(hi, 31);
    lo = _mm_slli_epi32(lo, 1), hi = _mm_slli_epi32(hi, 1);
    __m128i across = _mm_srli_si128(lo_carry, 12);
    hi_carry = _mm_slli_si128(hi_carry, 4), lo_carry = _mm_slli_si128(lo_carry, 4);
    lo = _mm_or_si128(lo, lo_carry);
    hi = _mm_or_si128(_mm_or_si128(hi, hi_carry), across);
    __m128i t = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi32(lo, 31), _mm_slli_epi32(lo, 30)),
                              _mm_slli_epi32(lo, 25));
    __m128i t_hi = _mm_srli_si128(t, 4);
    lo = _mm_xor_si128(lo, _mm_slli_si128(t, 12));
    __m128i r = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi32(lo, 1), _mm_srli_epi32(lo, 2)),
                              _mm_srli_epi32(lo, 7));
    r = _mm_xor_si128(_mm_xor_si128(r, t_hi), lo);
    return _mm_xor_si128(hi, r);
}

/* a * b in GCM's field, both bytes reversed. */
TARGET static inline __m128i
gfmul(__m128i a, __m128i b)
{
    __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
    clmul(a, b, &lo, &mid, &hi);
    return reduce(lo, mid, hi);
}

/* GHASH over `length` bytes, the last block zero padded. */
TARGET static __m128i
ghash(__m128i x, __m128i h, const unsigned char *data, size_t length)
{
    for (; length >= 16; data += 16, length -= 16)
        x = gfmul(_mm_xor_si128(x, bswap(_mm_loadu_si128((const __m128i *)data))), h);
    if (length) {
        unsigned char last[16] = {0};
        memcpy(last, data, length);
        x = gfmul(_mm_xor_si128(x, bswap(_mm_loadu_si128((const __m128i *)last))), h);
    }
    return x;
}

/* GCM's encryption of `length` bytes in place with a 96-bit `iv`, after `aad`; the
 * tag to `tag`. */
TARGET static void
gcm_encrypt(const srtp_sender *g, const unsigned char iv[12], const unsigned char *aad,
            size_t aad_length, unsigned char *data, size_t length, unsigned char *tag)
{
    unsigned char block[16];
    memcpy(block, iv, 12);
    memset(block + 12, 0, 4);
    __m128i base = _mm_loadu_si128((const __m128i *)block);
    __m128i powers[4]; /* h, h^2, h^3, h^4 */
    for (int i = 0; i < 4; i++)
        powers[i] = _mm_loadu_si128((const __m128i *)g->powers[i]);
    __m128i h = powers[0];
    __m128i x = ghash(_mm_setzero_si128(), h, aad, aad_length);
    uint32_t counter = 2; /* 1 is the tag's */
    size_t at = 0;
    for (; at + 64 <= length; at += 64, counter += 4) {
        __m128i c[4];
        for (int j = 0; j < 4; j++)
            c[j] = _mm_insert_epi32(base, (int)__builtin_bswap32(counter + j), 3);
        encrypt4(g, c);
        __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
        for (int j = 0; j < 4; j++) { /* x = (x + c0) h^4 + c1 h^3 + c2 h^2 + c3 h */
            __m128i *p = (__m128i *)(data + at + 16 * j);
            __m128i out = _mm_xor_si128(c[j], _mm_loadu_si128(p));
            _mm_storeu_si128(p, out);
            out = bswap(out);
            clmul(j ? out : _mm_xor_si128(x, out), powers[3 - j], &lo, &mid, &hi);
        }
        x = reduce(lo, mid, hi);
    }
    for (; at < length; at += 16, counter++) {
        __m128i stream = encrypt_block(g, _mm_insert_epi32(base, (int)__builtin_bswap32(counter), 3));
        size_t n = length - at < 16 ? length - at : 16;
        _mm_storeu_si128((__m128i *)block, stream);
        for (size_t i = 0; i < n; i++)
            data[at + i] ^= block[i];
        x = ghash(x, h, data + at, n);
    }
    x = _mm_xor_si128(x, _mm_set_epi64x((long long)aad_length * 8, (long long)length * 8));
    x = gfmul(x, h);
    __m128i first = encrypt_block(g, _mm_insert_epi32(base, (int)__builtin_bswap32(1), 3));
    _mm_storeu_si128((__m128i *)tag, _mm_xor_si128(bswap(x), first));
}

/* AES in counter mode (SRTP's AES-CM): `data` XOR the keystream from the 16-byte
 * `block`, whose last two bytes count the blocks from 0. */
TARGET static void
counter_mode(const srtp_sender *g, const unsigned char block[16], unsigned char *data,
             size_t length)
{
    __m128i base = _mm_loadu_si128((const __m128i *)block);
    size_t at = 0;
    uint16_t i = 0;
    for (; at + 64 <= length; at += 64, i += 4) { /* four blocks side by side */
        __m128i c[4];
        for (int j = 0; j < 4; j++)
            c[j] = _mm_insert_epi16(base, __builtin_bswap16((uint16_t)(i + j)), 7);
        encrypt4(g, c);
        for (int j = 0; j < 4; j++) {
            __m128i *p = (__m128i *)(data + at + 16 * j);
            _mm_storeu_si128(p, _mm_xor_si128(c[j], _mm_loadu_si128(p)));
        }
    }
    unsigned char stream[16];
    for (; at < length; at += 16, i++) {
        __m128i counter = _mm_insert_epi16(base, __builtin_bswap16(i), 7);
        _mm_storeu_si128((__m128i *)stream, encrypt_block(g, counter));
        size_t n = length - at < 16 ? length - at : 16;
        for (size_t j = 0; j < n; j++)
            data[at + j] ^= stream[j];
    }
}

/* SRTP's key derivation (RFC 3711 4.3.3): `length` bytes of AES counter mode under
 * the master key, from the master salt (zero padded to 14 bytes) with `label` in
 * its eighth byte. */
TARGET static void
derive(const srtp_sender *master, const unsigned char *salt, size_t salt_length, int label,
       unsigned char *out, size_t length)
{
    unsigned char block[16] = {0};
    memcpy(block, salt, salt_length);
    block[7] ^= (unsigned char)label;
    memset(out, 0, length);
    counter_mode(master, block, out, length);
}

/* SHA-1's compression of `blocks` 64-byte blocks into `state` (h0..h4), on the SHA
 * extensions: four rounds an instruction, the message schedule alongside. */
TARGET static void
sha1_blocks(uint32_t state[5], const unsigned char *data, size_t blocks)
{
    const __m128i order = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)state), 0x1b);
    __m128i e0 = _mm_set_epi32((int)state[4], 0, 0, 0), e1;
    for (; blocks; blocks--, data += 64) {
        __m128i abcd_was = abcd, e_was = e0, m[4];
#pragma GCC unroll 20 /* whole: then each step's choices are constants */
        for (int g = 0; g < 20; g++) { /* four rounds each: message m[g % 4] */
            if (g < 4)
                m[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * g)), order);
            __m128i *e = g % 2 ? &e1 : &e0, *next = g % 2 ? &e0 : &e1, w = m[g % 4];
            *e = g ? _mm_sha1nexte_epu32(*e, w) : _mm_add_epi32(*e, w);
            *next = abcd;
            if (g >= 3 && g <= 18)
                m[(g + 1) % 4] = _mm_sha1msg2_epu32(m[(g + 1) % 4], w);
            switch (g / 5) {
            case 0:
                abcd = _mm_sha1rnds4_epu32(abcd, *e, 0);
                break;
            case 1:
                abcd = _mm_sha1rnds4_epu32(abcd, *e, 1);
                break;
            case 2:
                abcd = _mm_sha1rnds4_epu32(abcd, *e, 2);
                break;
            default:
                abcd = _mm_sha1rnds4_epu32(abcd, *e, 3);
            }
            if (g >= 1 && g <= 16)
                m[(g + 3) % 4] = _mm_sha1msg1_epu32(m[(g + 3) % 4], w);
            if (g >= 2 && g <= 17)
                m[(g + 2) % 4] = _mm_xor_si128(m[(g + 2) % 4], w);
        }
        e0 = _mm_sha1nexte_epu32(e0, e_was);
        abcd = _mm_add_epi32(abcd, abcd_was);
    }
    _mm_storeu_si128((__m128i *)state, _mm_shuffle_epi32(abcd, 0x1b));
    state[4] = (uint32_t)_mm_extract_epi32(e0, 3);
}

/* SHA-1 of `length` more bytes after `before` bytes already in `state`: the digest. */
TARGET static void
sha1_finish(const uint32_t from[5], size_t before, const unsigned char *data, size_t length,
            unsigned char digest[20])
{
    uint32_t state[5];
    memcpy(state, from, sizeof(state));
    sha1_blocks(state, data, length / 64);
    unsigned char last[128] = {0};
    size_t rest = length % 64, tail = rest < 56 ? 64 : 128;
    memcpy(last, data + length - rest, rest);
    last[rest] = 0x80;
    uint64_t bits = (uint64_t)(before + length) * 8;
    for (int i = 0; i < 8; i++)
        last[tail - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha1_blocks(state, last, tail / 64);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            digest[4 * i + j] = (unsigned char)(state[i] >> (24 - 8 * j));
}

/* HMAC-SHA1's states after its key XOR ipad and XOR opad (RFC 2104). */
TARGET static void
hmac_init(srtp_sender *g, const unsigned char *key, size_t length)
{
    static const uint32_t start[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476,
                                      0xc3d2e1f0};
    unsigned char inner[64], outer[64];
    for (size_t i = 0; i < 64; i++) {
        unsigned char k = i < length ? key[i] : 0;
        inner[i] = k ^ 0x36, outer[i] = k ^ 0x5c;
    }
    memcpy(g->inner, start, sizeof(start));
    memcpy(g->outer, start, sizeof(start));
    sha1_blocks(g->inner, inner, 1);
    sha1_blocks(g->outer, outer, 1);
}

/* Wiped, in a way the compiler keeps. */
static void
wipe(void *at, size_t length)
{
    explicit_bzero(at, length);
}

TARGET static void
init_here(srtp_sender *g, int profile, const unsigned char *master, size_t key_length,
          size_t salt_length)
{
    int gcm = profile != SRTP_AES128_CM_SHA1_80;
    srtp_sender kdf;
    kdf.rounds = expand(kdf.keys, master, key_length);
    const unsigned char *salt = master + key_length;
    unsigned char key[32];
    memset(g, 0, sizeof(*g));
    g->profile = profile;
    derive(&kdf, salt, salt_length, 0x00, key, key_length);   /* the encryption key */
    derive(&kdf, salt, salt_length, 0x02, g->salt, salt_length); /* the salt */
    g->rounds = expand(g->keys, key, key_length);
    if (gcm) {
        g->tag = 16;
        __m128i h = bswap(encrypt_block(g, _mm_setzero_si128())), power = h;
        for (int i = 0; i < 4; i++, power = gfmul(power, h))
            _mm_storeu_si128((__m128i *)g->powers[i], power);
    } else {
        unsigned char auth[20];
        g->tag = 10;
        derive(&kdf, salt, salt_length, 0x01, auth, sizeof(auth)); /* the HMAC key */
        hmac_init(g, auth, sizeof(auth));
        wipe(auth, sizeof(auth));
    }
    wipe(key, sizeof(key));
    wipe(&kdf, sizeof(kdf));
}

/* Checked here, outside code built for the instructions it checks for. */
int
srtp_sender_init(srtp_sender *g, int profile, const unsigned char *master, size_t length)
{
    size_t key_length = profile == SRTP_AEAD_AES_256_GCM ? 32 : 16;
    size_t salt_length = profile == SRTP_AES128_CM_SHA1_80 ? 14 : 12;
    if (length != key_length + salt_length || !srtp_sender_available(profile))
        return -1; /* another profile is not available either */
    init_here(g, profile, master, key_length, salt_length);
    return 0;
}

void
srtp_sender_wipe(srtp_sender *g)
{
    wipe(g, sizeof(*g));
}

/* AES-CM and HMAC-SHA1-80 of a packet with `size` bytes of header, at `index`. */
TARGET static void
protect_cm(const srtp_sender *g, unsigned char *rtp, int size, int length, int64_t index)
{
    unsigned char block[16] = {0}, digest[20];
    memcpy(block, g->salt, 14);
    for (int i = 0; i < 4; i++)
        block[4 + i] ^= rtp[8 + i];
    for (int i = 0; i < 6; i++)
        block[8 + i] ^= (unsigned char)(index >> (40 - 8 * i));
    counter_mode(g, block, rtp + size, (size_t)(length - size));
    uint32_t roc = (uint32_t)(index >> 16);
    unsigned char *after = rtp + length; /* the rollover counter, where the tag goes */
    after[0] = roc >> 24, after[1] = roc >> 16, after[2] = roc >> 8, after[3] = roc;
    sha1_finish(g->inner, 64, rtp, (size_t)length + 4, digest);
    sha1_finish(g->outer, 64, digest, sizeof(digest), digest);
    memcpy(after, digest, 10);
}

/* The header's length (with CSRCs and extensions), or -1 if `length` is short. */
static int
header_length(const unsigned char *rtp, int length)
{
    if (length < 12 || (rtp[0] >> 6) != 2)
        return -1;
    int size = 12 + 4 * (rtp[0] & 0x0f);
    if (rtp[0] & 0x10) {
        if (length < size + 4)
            return -1;
        size += 4 + 4 * (rtp[size + 2] << 8 | rtp[size + 3]);
    }
    return size <= length ? size : -1;
}

static uint32_t
read32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The packet's index (RFC 3711 3.3.1 and appendix A) from the last one's. (In
 * the first 32768 packets libsrtp takes any later sequence number as rollover
 * counter 0; this takes no jump of more than half the numbers, which a sender that
 * numbers its packets one after another never makes.) */
static int64_t
estimate(const srtp_sender *g, unsigned int seq)
{
    int64_t roc = g->roc;
    if (g->seq < 0x8000) {
        if (seq > g->seq + 0x8000)
            roc--;
    } else if (seq < g->seq - 0x8000)
        roc++;
    return roc * 0x10000 + seq;
}

static int
protect(srtp_sender *g, unsigned char *rtp, int *length, int again)
{
    int size = header_length(rtp, *length);
    if (size < 0)
        return BAD_PARAM;
    uint32_t ssrc = read32(rtp + 8);
    unsigned int seq = (unsigned int)(rtp[2] << 8 | rtp[3]);
    int64_t index = seq, last = (int64_t)g->roc * 0x10000 + g->seq;
    if (g->started) {
        if (ssrc != g->ssrc)
            return BAD_PARAM;
        index = estimate(g, seq);
        if (again ? index > last || index < 0 : index <= last)
            return REPLAY_FAIL;
    } else if (again)
        return REPLAY_FAIL;
    uint32_t roc = (uint32_t)(index >> 16);
    if (g->profile == SRTP_AES128_CM_SHA1_80)
        protect_cm(g, rtp, size, *length, index);
    else {
        unsigned char iv[12] = {0};
        memcpy(iv + 2, rtp + 8, 4);
        iv[6] = roc >> 24, iv[7] = roc >> 16, iv[8] = roc >> 8, iv[9] = roc;
        iv[10] = rtp[2], iv[11] = rtp[3];
        for (int i = 0; i < 12; i++)
            iv[i] ^= g->salt[i];
        gcm_encrypt(g, iv, rtp, size, rtp + size, *length - size, rtp + *length);
    }
    *length += g->tag;
    if (!again) {
        g->ssrc = ssrc, g->roc = roc, g->seq = seq, g->started = 1;
    }
    return 0;
}

int
srtp_sender_protect(void *g, void *rtp, int *length)
{
    return protect(g, rtp, length, 0);
}

int
srtp_sender_protect_again(void *g, void *rtp, int *length)
{
    return protect(g, rtp, length, 1);
}

#else /* not x86-64: never initialised, never called */

void
srtp_sender_wipe(srtp_sender *g)
{
}

int
srtp_sender_init(srtp_sender *g, int profile, const unsigned char *master, size_t length)
{
    return -1;
}

int
srtp_sender_protect(void *g, void *rtp, int *length)
{
    return FAIL;
}

int
srtp_sender_protect_again(void *g, void *rtp, int *length)
{
    return FAIL;
}

#endif
