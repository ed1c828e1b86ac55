/* Go's http.CanonicalHeaderKey, shared by the echo server and client. */
#ifndef GAMMAMESH_ECHO_CANON_H
#define GAMMAMESH_ECHO_CANON_H

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* An RFC 9110 token character. */
static inline bool echo_is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Canonicalise n bytes of in into out (n bytes): "x-header-add" -> "X-Header-Add". A name with
 * a byte outside the token set is copied unchanged, as Go does. */
static inline void echo_canon(const char *in, size_t n, char *out)
{
    bool upper = true;

    for (size_t i = 0; i < n; i++) {
        if (!echo_is_tchar((unsigned char)in[i])) {
            memcpy(out, in, n);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (upper && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        else if (!upper && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        out[i] = ch;
        upper = ch == '-';
    }
}

#endif
