/*
 * Address text <-> socket addresses for the cluster. Owns the one accepted syntax
 * ("HOST:PORT", "[V6]:PORT"); never resolves names through DNS (only numeric hosts and
 * "localhost"), so parsing is instant and deterministic.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/net/net.h"
#include "petrel/common.h"

int pt_addr_parse(const char *text, struct sockaddr_storage *out)
{
    char host[PT_ADDR_MAX];
    const char *colon, *port_text;
    char *end;
    unsigned long port;
    size_t host_len;

    if (!text || strlen(text) >= PT_ADDR_MAX) return -PT_EINVAL;
    memset(out, 0, sizeof(*out));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') return -PT_EINVAL;
        host_len = (size_t)(close - text - 1);
        memcpy(host, text + 1, host_len);
        host[host_len] = 0;
        port_text = close + 2;
    } else {
        colon = strrchr(text, ':');
        if (!colon) return -PT_EINVAL;
        host_len = (size_t)(colon - text);
        memcpy(host, text, host_len);
        host[host_len] = 0;
        port_text = colon + 1;
    }
    if (!*port_text || *port_text == '-' || *port_text == '+') return -PT_EINVAL;
    port = strtoul(port_text, &end, 10);
    if (*end || port > 65535) return -PT_EINVAL;
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    {
        struct sockaddr_in *v4 = (struct sockaddr_in *)out;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
        if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons((uint16_t)port);
            return 0;
        }
        if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons((uint16_t)port);
            return 0;
        }
    }
    return -PT_EINVAL;
}

int pt_addr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    int n;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        if (!inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host))) return -PT_EINVAL;
        n = snprintf(buf, cap, "%s:%u", host, ntohs(v4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        if (!inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host))) return -PT_EINVAL;
        n = snprintf(buf, cap, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else {
        return -PT_EINVAL;
    }
    return (n < 0 || (size_t)n >= cap) ? -PT_EINVAL : 0;
}
