/* cmdline.c - words, key=value and numbers (decimal or 0x hex) from the command line. */
#include "hvlib.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

const char *hv_cmdline(const struct hv_boot_info *bi)
{
    if (!bi->cmdline)
        return "";
    return (const char *)(size_t)bi->cmdline;
}

const char *hv_skip_spaces(const char *s)
{
    while (is_space(*s))
        s++;
    return s;
}

size_t hv_next_word(const char **sp, char *out, size_t n)
{
    const char *s = hv_skip_spaces(*sp);
    size_t len = 0;
    while (s[len] && !is_space(s[len])) {
        if (out && len + 1 < n)
            out[len] = s[len];
        len++;
    }
    if (out && n)
        out[len < n ? len : n - 1] = 0;
    *sp = s + len;
    return len;
}

size_t hv_word(const char *s, unsigned idx, char *out, size_t n)
{
    size_t len;
    for (;;) {
        len = hv_next_word(&s, out, n);
        if (!len || !idx--)
            return len;
    }
}

int hv_get_kv(const char *s, const char *key, char *out, size_t n)
{
    size_t klen = hv_strlen(key);
    for (;;) {
        const char *w;
        size_t len;
        s = hv_skip_spaces(s);
        w = s;
        len = hv_next_word(&s, NULL, 0);
        if (!len)
            return 0;
        if (len > klen && w[klen] == '=' && !hv_strncmp(w, key, klen)) {
            size_t vlen = len - klen - 1, i;
            if (out && n) {
                for (i = 0; i < vlen && i + 1 < n; i++)
                    out[i] = w[klen + 1 + i];
                out[i] = 0;
            }
            return 1;
        }
    }
}

int hv_parse_u64(const char *s, u64 *v)
{
    u64 x = 0;
    unsigned base = 10;
    int digits = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = *s - 'A' + 10;
        else
            return -1;
        if (x > (~0ull - d) / base)
            return -1;            /* overflow */
        x = x * base + d;
        digits++;
    }
    if (!digits)
        return -1;
    *v = x;
    return 0;
}

u64 hv_get_num(const char *s, const char *key, u64 def, int *ok)
{
    char buf[32];
    u64 v;
    if (ok)
        *ok = 1;
    if (!hv_get_kv(s, key, buf, sizeof buf))
        return def;
    if (hv_parse_u64(buf, &v) < 0) {
        if (ok)
            *ok = 0;
        return def;
    }
    return v;
}
