/* Asks the ssh agent at $SSH_AUTH_SOCK for its identities (SSH2_AGENTC_REQUEST_IDENTITIES) and
 * prints "keys N" then one comment per line: what a RUN step's ssh mount reaches, read without
 * ssh tools in the image. Built static by the tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int read_all(int fd, unsigned char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int main(void) {
    const char *path = getenv("SSH_AUTH_SOCK");
    if (!path) { puts("no SSH_AUTH_SOCK"); return 2; }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 3; }
    const unsigned char request[5] = { 0, 0, 0, 1, 11 };
    if (write(fd, request, sizeof request) != sizeof request) { perror("write"); return 4; }
    unsigned char head[4];
    if (read_all(fd, head, 4) != 0) { puts("no answer"); return 5; }
    uint32_t len = be32(head);
    if (len < 5 || len > (1u << 20)) { puts("bad answer"); return 6; }
    unsigned char *body = malloc(len);
    if (!body || read_all(fd, body, len) != 0) { puts("short answer"); return 7; }
    if (body[0] != 12) { printf("answer type %d\n", body[0]); return 8; }
    uint32_t keys = be32(body + 1);
    printf("keys %u\n", keys);
    size_t at = 5;
    for (uint32_t i = 0; i < keys; i++) {
        if (at + 4 > len) return 9;
        at += 4 + be32(body + at); /* the key blob */
        if (at + 4 > len) return 9;
        uint32_t clen = be32(body + at);
        if (at + 4 + clen > len) return 9;
        printf("%.*s\n", (int)clen, (const char *)(body + at + 4));
        at += 4 + clen;
    }
    return 0;
}
