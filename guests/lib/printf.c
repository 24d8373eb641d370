/* printf.c - a small printf: %[-][0][width][l|ll|z|h](d|i|u|x|X|p|s|c) and %%. */
#include "internal.h"

static void put_str(struct hv_sink *s, const char *p, size_t n, int width, int left)
{
    int pad = width > (int)n ? width - (int)n : 0;
    if (!left)
        while (pad-- > 0)
            s->put(s, ' ');
    while (n--)
        s->put(s, *p++);
    if (left)
        while (pad-- > 0)
            s->put(s, ' ');
}

static void put_num(struct hv_sink *s, u64 v, int neg, unsigned base, int upper,
                    int width, int zero, int left, const char *prefix)
{
    char tmp[24];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0, plen = 0, len, pad;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    if (neg)
        prefix = "-";
    if (prefix)
        plen = (int)hv_strlen(prefix);
    len = n + plen;
    pad = width > len ? width - len : 0;
    if (!left && !zero)
        while (pad-- > 0)
            s->put(s, ' ');
    if (prefix)
        while (*prefix)
            s->put(s, *prefix++);
    if (!left && zero)
        while (pad-- > 0)
            s->put(s, '0');
    while (n)
        s->put(s, tmp[--n]);
    if (left)
        while (pad-- > 0)
            s->put(s, ' ');
}

int hv_vformat(struct hv_sink *s, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        int left = 0, zero = 0, width = 0, lng = 0;
        if (*fmt != '%') {
            s->put(s, *fmt);
            continue;
        }
        fmt++;
        for (;; fmt++) {
            if (*fmt == '-')
                left = 1;
            else if (*fmt == '0')
                zero = 1;
            else
                break;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        for (;; fmt++) {
            if (*fmt == 'l' || *fmt == 'z')
                lng++;
            else if (*fmt != 'h')
                break;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            s64 v = lng ? va_arg(ap, s64) : va_arg(ap, int);   /* long == long long here */
            put_num(s, v < 0 ? -(u64)v : (u64)v, v < 0, 10, 0, width, zero, left, NULL);
            break;
        }
        case 'u':
            put_num(s, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 0, 10, 0, width, zero, left, NULL);
            break;
        case 'x':
        case 'X':
            put_num(s, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 0, 16, *fmt == 'X', width,
                    zero, left, NULL);
            break;
        case 'p':
            put_num(s, (u64)(size_t)va_arg(ap, void *), 0, 16, 0, width, zero, left, "0x");
            break;
        case 's': {
            const char *p = va_arg(ap, const char *);
            if (!p)
                p = "(null)";
            put_str(s, p, hv_strlen(p), width, left);
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            put_str(s, &c, 1, width, left);
            break;
        }
        case '%':
            s->put(s, '%');
            break;
        case 0:
            return 0;
        default:            /* unknown conversion: print it as is */
            s->put(s, '%');
            s->put(s, *fmt);
            break;
        }
    }
    return 0;
}

int hv_vprintf(const char *fmt, va_list ap)
{
    struct hv_sink s;
    hv_console_lock();
    hv_console_sink_init(&s);
    hv_vformat(&s, fmt, ap);
    hv_console_sink_flush(&s);
    hv_console_unlock();
    return 0;
}

int hv_printf(const char *fmt, ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = hv_vprintf(fmt, ap);
    va_end(ap);
    return r;
}

static void buf_put(struct hv_sink *s, char c)
{
    if (s->len + 1 < s->size)
        s->buf[s->len] = c;
    s->len++;
}

int hv_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct hv_sink s = { .put = buf_put, .buf = buf, .size = size, .len = 0 };
    hv_vformat(&s, fmt, ap);
    if (size)
        buf[s.len < size ? s.len : size - 1] = 0;
    return (int)s.len;
}

int hv_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = hv_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return r;
}
