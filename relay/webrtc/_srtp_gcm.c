/* SRTP AEAD_AES_*_GCM (RFC 7714) on AES-NI and PCLMULQDQ: see _srtp_gcm.h.
 *
 * - Session keys come from the master key and salt by SRTP's key derivation
 *   (RFC 3711 4.3, AES in counter mode; RFC 7714 11: a 96-bit salt, zero padded).
 * - A packet's IV is the session salt XOR (0, SSRC, rollover counter, sequence
 *   number); its header is the additional data, its payload is encrypted and the
 *   16-byte tag follows (RFC 7714 8).
 * - GCM itself as NIST SP 800-38D; GHASH on bytes reversed, multiplied and reduced
 *   as in Intel's "Carry-Less Multiplication and Its Usage for Computing the GCM
 *   Mode" (algorithms 1 and 5). Four blocks at a time: their counters through
 *   AES side by side, their GHASH by h^4..h with one reduction.
 *
 * tests/relay/webrtc/test_srtp.py checks it against libsrtp, byte for byte (AES-128
 * and AES-256, every payload length about a block's edges, each header's shape,
 * rollover counters 0 to 2), and a viewer's libsrtp reads it.
 */
#include "_srtp_gcm.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_GCM 1
#include <immintrin.h>
#define TARGET __attribute__((target("aes,pclmul,ssse3,sse4.1")))
#else
#define HAVE_GCM 0
#endif

enum { BAD_PARAM = 2, REPLAY_FAIL = 10, FAIL = 1 };

int
srtp_gcm_available(void)
{
#if HAVE_GCM
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") &&
           __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.1");
#else
    return 0;
#endif
}

#if HAVE_GCM

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
encrypt_block(const srtp_gcm *g, __m128i x)
{
    x = _mm_xor_si128(x, _mm_loadu_si128((const __m128i *)g->keys[0]));
    for (int i = 1; i < g->rounds; i++)
        x = _mm_aesenc_si128(x, _mm_loadu_si128((const __m128i *)g->keys[i]));
    return _mm_aesenclast_si128(x, _mm_loadu_si128((const __m128i *)g->keys[g->rounds]));
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
gcm_encrypt(const srtp_gcm *g, const unsigned char iv[12], const unsigned char *aad,
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
            c[j] = _mm_xor_si128(_mm_insert_epi32(base, (int)__builtin_bswap32(counter + j), 3),
                                 _mm_loadu_si128((const __m128i *)g->keys[0]));
        for (int i = 1; i < g->rounds; i++) {
            __m128i k = _mm_loadu_si128((const __m128i *)g->keys[i]);
            for (int j = 0; j < 4; j++)
                c[j] = _mm_aesenc_si128(c[j], k);
        }
        __m128i last = _mm_loadu_si128((const __m128i *)g->keys[g->rounds]);
        __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
        for (int j = 0; j < 4; j++) { /* x = (x + c0) h^4 + c1 h^3 + c2 h^2 + c3 h */
            __m128i *p = (__m128i *)(data + at + 16 * j);
            __m128i out = _mm_xor_si128(_mm_aesenclast_si128(c[j], last), _mm_loadu_si128(p));
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

/* SRTP's key derivation (RFC 3711 4.3.3): `length` bytes of AES counter mode under
 * the master key, from the master salt with `label` in its eighth byte. */
TARGET static void
derive(const srtp_gcm *master, const unsigned char salt[12], int label, unsigned char *out,
       size_t length)
{
    unsigned char block[16] = {0};
    memcpy(block, salt, 12);
    block[7] ^= (unsigned char)label;
    for (size_t at = 0, i = 0; at < length; at += 16, i++) {
        block[14] = (unsigned char)(i >> 8), block[15] = (unsigned char)i;
        unsigned char stream[16];
        _mm_storeu_si128((__m128i *)stream,
                         encrypt_block(master, _mm_loadu_si128((const __m128i *)block)));
        memcpy(out + at, stream, length - at < 16 ? length - at : 16);
    }
}

TARGET int
srtp_gcm_init(srtp_gcm *g, const unsigned char *master, size_t length)
{
    if ((length != 28 && length != 44) || !srtp_gcm_available())
        return -1;
    size_t key_length = length - 12;
    srtp_gcm kdf;
    kdf.rounds = expand(kdf.keys, master, key_length);
    unsigned char key[32];
    memset(g, 0, sizeof(*g));
    derive(&kdf, master + key_length, 0x00, key, key_length); /* the encryption key */
    derive(&kdf, master + key_length, 0x02, g->salt, 12);     /* the salt */
    g->rounds = expand(g->keys, key, key_length);
    __m128i h = bswap(encrypt_block(g, _mm_setzero_si128())), power = h;
    for (int i = 0; i < 4; i++, power = gfmul(power, h))
        _mm_storeu_si128((__m128i *)g->powers[i], power);
    memset(key, 0, sizeof(key));
    memset(&kdf, 0, sizeof(kdf));
    return 0;
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

/* The packet's index (RFC 3711 3.3.1 and appendix A) from the last one's. */
static int64_t
estimate(const srtp_gcm *g, unsigned int seq)
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
protect(srtp_gcm *g, unsigned char *rtp, int *length, int again)
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
    unsigned char iv[12] = {0};
    memcpy(iv + 2, rtp + 8, 4);
    uint32_t roc = (uint32_t)(index >> 16);
    iv[6] = roc >> 24, iv[7] = roc >> 16, iv[8] = roc >> 8, iv[9] = roc;
    iv[10] = rtp[2], iv[11] = rtp[3];
    for (int i = 0; i < 12; i++)
        iv[i] ^= g->salt[i];
    gcm_encrypt(g, iv, rtp, size, rtp + size, *length - size, rtp + *length);
    *length += SRTP_GCM_TAG;
    if (!again) {
        g->ssrc = ssrc, g->roc = roc, g->seq = seq, g->started = 1;
    }
    return 0;
}

int
srtp_gcm_protect(void *g, void *rtp, int *length)
{
    return protect(g, rtp, length, 0);
}

int
srtp_gcm_protect_again(void *g, void *rtp, int *length)
{
    return protect(g, rtp, length, 1);
}

#else /* no AES-NI here: never initialised, never called */

int
srtp_gcm_init(srtp_gcm *g, const unsigned char *master, size_t length)
{
    return -1;
}

int
srtp_gcm_protect(void *g, void *rtp, int *length)
{
    return FAIL;
}

int
srtp_gcm_protect_again(void *g, void *rtp, int *length)
{
    return FAIL;
}

#endif
