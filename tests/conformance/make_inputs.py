#!/usr/bin/env python3
"""Writes tests/conformance/inputs.txt, the addresses every batv face is held to (docs/scheme.md).

Standard library only: the valid tags are computed here from docs/scheme.md ("Wire format",
"MAC schemes", "Days and expiry") with hmac and hashlib, never by batv, so a tag batv makes
wrongly shows up as a disagreement instead of being copied into the inputs.

Usage: make_inputs.py            write inputs.txt next to this file
       make_inputs.py --check    exit 1 if inputs.txt differs from what this makes
       make_inputs.py --stdout   print what it makes

check.py imports NOW, KEYRING_TEXT, decode() and make() from here.
"""

import base64
import hashlib
import hmac
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
INPUTS = os.path.join(HERE, "inputs.txt")

# Every face signs and verifies as of this instant (13:33:20 UTC of day 20783).
NOW = 1795700000
DAY = 86400
LIFETIME = 7

# The fixed conformance keyring: test keys, published here, guarding nothing.
KEY1_SECRET = hashlib.sha256(b"batv conformance key 1").digest()
KEY0_SECRET = b"conformance secret shared with exim"
KEYS = {1: (hashlib.sha256, KEY1_SECRET), 0: (hashlib.sha1, KEY0_SECRET)}
KEYRING_TEXT = (
    "# batv conformance keyring (tests/conformance/make_inputs.py); test keys only\n"
    f"lifetime-days {LIFETIME}\n"
    "skew-days 1\n"
    "sign-key 1\n"
    f"key 1 hmac-sha256 base64:{base64.b64encode(KEY1_SECRET).decode()}\n"
    f"key 0 hmac-sha1 text:{KEY0_SECRET.decode()}\n"
)

# The policy every face checks with (check.py): two exemptions, the default bounce local part.
EXEMPT = ("dmarc@example.com", "@lists.example.org")


def ascii_lower(b):
    return b.translate(bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz"))


def stamp(key, address, days=0, mac_key=None):
    """K DDD SSSSSS for `address` signed `days` days from NOW (docs/scheme.md "MAC schemes")."""
    digest, secret = KEYS[key if mac_key is None else mac_key]
    ddd = (NOW // DAY + days + LIFETIME) % 1000
    head = f"{key}{ddd:03d}".encode()
    # hmac-sha256 hashes the address with ASCII letters lower-cased, hmac-sha1 as it is.
    hashed = ascii_lower(address) if digest is hashlib.sha256 else address
    return head + hmac.new(secret, head + hashed, digest).digest()[:3].hex().encode()


def tag(address, key=1, days=0, mac_key=None):
    """prvs=KDDDSSSSSS=address; a quoted local part keeps the tag inside its quotes."""
    s = stamp(key, address, days, mac_key)
    if address.startswith(b'"') and b'"@' in address[1:]:
        return b'"prvs=' + s + b"=" + address[1:]
    return b"prvs=" + s + b"=" + address


def old_tag(address, key=1, days=0, mac_key=None):
    """The older form prvs=local/KDDDSSSSSS@domain, the same MAC input."""
    local, domain = address.rsplit(b"@", 1)
    return b"prvs=" + local + b"/" + stamp(key, address, days, mac_key) + b"@" + domain


def forge(tagged, old=False):
    """The tag with the first of its six hex digits changed (the MAC no longer matches)."""
    i = tagged.rindex(b"/") + 5 if old else tagged.index(b"prvs=") + 9
    c = tagged[i:i + 1]
    return tagged[:i] + (b"0" if c != b"0" else b"1") + tagged[i + 1:]


def at(n, domain=b"example.com"):
    """An address of exactly n octets: a local part of a's, then @domain."""
    return b"a" * (n - 1 - len(domain)) + b"@" + domain


def groups():
    g = []
    ordinary = [
        b"user@example.com", b"User.Name+tag@Example.COM", b"list=owner@lists.example.org",
        b"a=b=c@example.com", b"a@b", b"postmaster", b"user@[192.0.2.1]",
        "jöhn@exämple.com".encode(), "用户@例子.广告".encode(), b"mailer-daemon@example.com",
        b"user@example.com.", b"user@@example.com", b"@example.com", b"user@", b"@", b"prvs",
        b"prvs@example.com", b"prvsx=1790abcdef=user@example.com", b"x-prvs=1790abcdef=u@example.com",
        b"o'brien@example.com", b"user%relay@example.com", b"!#$%&*+/=?^_`{|}~@example.com",
        b"back\\slash@example.com",
    ]
    g.append(("ordinary addresses", ordinary))

    g.append(("exempt recipients (exemptions dmarc@example.com and @lists.example.org)", [
        b"dmarc@example.com", b"DMARC@Example.COM", b"dmarc@example.org", b"dmarcx@example.com",
        b"dmarc@", b"anyone@lists.example.org", b"Anyone@LISTS.Example.ORG",
        b"x@sub.lists.example.org", b"x@lists.example.org.evil", b"@lists.example.org",
        b'"dmarc"@example.com', tag(b"dmarc@example.com"), tag(b"dmarc@example.com", 0),
        forge(tag(b"dmarc@example.com")), tag(b"anyone@lists.example.org", days=-30),
    ]))

    bases = [b"user@example.com", b"User.Name+tag@Example.COM", b"list=owner@lists.example.org",
             b"a@b", "jöhn@exämple.com".encode(), b"user@[192.0.2.1]", b"mailer-daemon@example.com",
             b"o'brien@example.com", b"back\\slash@example.com"]
    valid = [tag(b, k) for b in bases for k in (1, 0)]
    valid += [tag(b"user@example.com", k, d) for k in (1, 0) for d in (-7, -6, -1, 1)]
    # A tag around a tagged address (sign never makes one; strip removes both).
    valid += [tag(tag(b"user@example.com"), k) for k in (1, 0)]
    g.append(("valid tags: hmac-sha256 key 1 and hmac-sha1 key 0, signed at NOW (and days -7..+1)", valid))

    g.append(("forged: the MAC, the key number or the day changed", [
        forge(t) for t in valid[:6]] + [
        tag(b"user@example.com", 0, mac_key=1), tag(b"user@example.com", 1, mac_key=0),
        tag(b"user@example.com")[:6] + b"791" + tag(b"user@example.com")[9:],
        tag(b"user@example.com")[:-1] + b"n",
        b"prvs=1790000000=user@example.com", forge(tag(b"user@example.com", days=-30)),
    ]))

    g.append(("expired: signed 30 days before NOW, and just outside the window", [
        tag(b"user@example.com", 1, -30), tag(b"user@example.com", 0, -30),
        tag(b"User.Name+tag@Example.COM", 0, -30), tag(b"user@example.com", 1, -8),
        tag(b"user@example.com", 0, -8), tag(b"user@example.com", 1, 2),
        tag(b"user@example.com", 1, -500), tag(b"user@example.com", 1, 500),
        old_tag(b"user@example.com", 1, -30), tag(b'"john doe"@example.com', 0, -30),
    ]))

    g.append(("unknown key: key numbers not in the keyring", [
        tag(b"user@example.com", 5, mac_key=1), tag(b"user@example.com", 9, mac_key=0),
        b"prvs=2790abcdef=user@example.com", old_tag(b"user@example.com", 7, mac_key=1),
    ]))

    t1, t0 = tag(b"user@example.com", 1), tag(b"user@example.com", 0)
    tm0 = tag(b"User.Name+tag@Example.COM", 0)
    g.append(("case-smashed: upper-case address, hex and/or PRVS=", [
        t1.upper(), t0.upper(), t1[:10] + t1[10:16].upper() + t1[16:], t0[:10] + t0[10:16].upper() + t0[16:],
        b"PRVS=" + t1[5:], b"Prvs=" + t0[5:], t1[:16] + t1[16:].upper(), t0[:16] + t0[16:].upper(),
        tm0.upper(), tm0[:16] + ascii_lower(tm0[16:]), tm0[:-11] + ascii_lower(tm0[-11:]),
        tag(b"USER@EXAMPLE.COM", 0), tag(b"USER@EXAMPLE.COM", 1).lower(),
        tag(b'"john doe"@example.com').upper(), old_tag(b"user@example.com").upper(),
    ]))

    g.append(("the old form prvs=local/KDDDSSSSSS@domain", [
        old_tag(b"user@example.com", 1), old_tag(b"user@example.com", 0),
        old_tag(b"User.Name+tag@Example.COM", 0), old_tag(b"list=owner@lists.example.org", 1),
        forge(old_tag(b"user@example.com", 1), old=True), forge(old_tag(b"user@example.com", 0), old=True),
        b"prvs=user/1790abcd@example.com", b"prvs=user/1790abcdefg@example.com",
        b"prvs=/" + stamp(1, b"@example.com") + b"@example.com", b"prvs=user/" + stamp(1, b"user@") + b"@",
        b"prvs=a/b/" + stamp(1, b"a/b@example.com") + b"@example.com",
        tag(old_tag(b"user@example.com", 1), 0),
    ]))

    jd = b'"john doe"@example.com'
    g.append(("quoted local parts", [
        jd, tag(jd, 1), tag(jd, 0), forge(tag(jd, 1)), old_tag(jd, 1), b'"prvs=' + stamp(1, jd) + b'=john doe@example.com',
        b"prvs=" + stamp(1, jd) + b"=" + jd, b'"john doe"@', b'""@example.com', b'""', b'"',
        b'"a<b>"@example.com', tag(b'"a<b>"@example.com'), b'"john\\"doe"@example.com',
        tag(b'"john\\"doe"@example.com'), b'"john doe" @example.com', b'"john"doe@example.com',
        b'"prvs=234d5777c=john doe"@example.com', b'"john@doe"@example.com', tag(b'"john@doe"@example.com'),
    ]))

    g.append(("over-long: 238/239/254/255 octets, tagged and not", [
        at(238), at(239), at(254), at(255), at(300), tag(at(238)), tag(at(238), 0), tag(at(239)),
        old_tag(at(238)), b"prvs=" + stamp(1, at(238)) + b"=" + at(238)[:-1] + b"mx",
        at(254)[:-11] + b"EXAMPLE.COM", at(255, b"lists.example.org"), tag(at(239))[:-1],
    ]))

    ctl = {"NUL": b"\x00", "TAB": b"\t", "CR": b"\r", "LF": b"\n", "DEL": b"\x7f", "ESC": b"\x1b"}
    c = []
    for name, o in ctl.items():
        c += [b"us" + o + b"er@example.com", tag(b"us" + o + b"er@example.com"),
              b"prvs=" + stamp(1, b"user@example.com") + b"=user@example.com" + o, o + b"user@example.com"]
    c += [b"user@example.com\r\n", b"\x00", b"\n", b"\r", b'"john\tdoe"@example.com', b"\x01@\x1f",
          tag(b"user@example.com")[:9] + b"\x00" + tag(b"user@example.com")[10:],
          b"\x00\n@example.com", b"us\x00er@example.com\r"]
    g.append(("control characters inside: NUL, TAB, CR, LF, DEL, ESC", c))

    g.append(("not UTF-8, tagged and not (and with control characters, and over-long)", [
        b"\xff@example.com", b"us\xe9r@example.com", b"user@ex\xc3ample.com", b"\xc0\xafuser@example.com",
        b"\xed\xa0\x80@example.com", b"user@example.com\x80", tag(b"\xff@example.com"), tag(b"\xff@example.com", 0),
        b"prvs=" + stamp(1, b"user@example.com") + b"=user@example.com\xff", b"prvs=1790\xff\xff\xff\xff\xff\xff=u@example.com",
        b"\xff\t@example.com", b"\xff\n@example.com", tag(b"\xff\n@example.com"), b"\xff\x00@example.com",
        at(255)[:-1] + b"\t", at(255)[:-1] + b"\n", at(254)[:-1] + b"\n", b"\xff" + at(254),
        "<jöhn@exämple.com>".encode("latin-1"),
    ]))

    g.append(("the null sender, angle brackets, whitespace", [
        b"", b"<>", b'"<>"', b"<<>>", b"< >", b"<user@example.com>", b"<" + tag(b"user@example.com") + b">",
        b"user@example.com>", b"<user@example.com", b"user<x>@example.com", b"user name@example.com",
        b" user@example.com", b"user@example.com ", b"user@exa mple.com", b" ", b"  ",
        "user\u00a0name@example.com".encode(), "user@example.com\u2003".encode(), "\u3000@example.com".encode(),
        b"prvs=" + stamp(1, b"user name@example.com") + b"=user name@example.com", tag(b"user@example.com") + b" ",
        b"<dmarc@example.com>",
    ]))

    g.append(("wild tag shapes of docs/scheme.md \"Strip\" (never valid)", [
        b"prvs=234d5777c=user@example.com", b"PRVS=234D5777C=USER@EXAMPLE.COM", b"prvs=abcdef=user@example.com",
        b"prvs=abcde=user@example.com", b"prvs=0123456789abcdef=user@example.com",
        b"prvs=0123456789abcdefg=user@example.com", b"prvs=234d5777c=@example.com", b"prvs=234d5777c=user@",
        b"prvs=234d5777c=user", b"prvs=234d-777c=user@example.com",
        b"msprvs1=abcdef12=user@example.com", b"MSPRVS1=ABCDEF12=user@example.com", b"msprvs1=abcde=user@example.com",
        b"msprvs1=abcdef12=@example.com", b"msprvs1=abcdef12=user@", b"msprvs1=0123456789abcdefg=user@example.com",
        b"btv1==abcdef123==user@example.com", b"BTV1==ABCDEF123==user@example.com", b"btv1==abcdef123=user@example.com",
        b"btv1==abc==user@example.com", b"btv1==abcdef123==user@", b"btv1==abcdef123==@example.com",
        b"prvs=234d5777c=prvs=234d5777c=user@example.com", tag(b"msprvs1=abcdef12=user@example.com"),
        b"btv1==abcdef123==" + tag(b"user@example.com"), b"msprvs1=abcdef12=" + tag(b"user@example.com", 0),
        b"prvs=234d5777c=dmarc@example.com", b"msprvs1=abcdef12=dmarc@example.com",
        b"btv1==abcdef123==x@lists.example.org",
    ]))

    # Seeded random mutations of valid tags: replace, insert, delete and case-flip octets.
    pool = valid + [old_tag(b"user@example.com", 1), old_tag(b"User.Name+tag@Example.COM", 0),
                    tag(jd, 1), tag(jd, 0), tag(at(238)), tag(b"dmarc@example.com")]
    seen = {a for _, items in g for a in items}
    rng = Rng(b"batv conformance mutations 1")
    interesting = b'=@"/<> \t\x00\n\r\x7f\x80\xff0123456789abcdefABCDEF.-+_\\'
    mutations = []
    while len(mutations) < 300:
        a = bytearray(pool[rng.below(len(pool))])
        for _ in range(1 + rng.below(3)):
            op = rng.below(4)
            octet = interesting[rng.below(len(interesting))] if rng.below(2) else rng.below(256)
            if op == 0 and a:
                a[rng.below(len(a))] = octet
            elif op == 1:
                a.insert(rng.below(len(a) + 1), octet)
            elif op == 2 and a:
                del a[rng.below(len(a))]
            else:
                letters = [i for i, b in enumerate(a) if chr(b).isascii() and chr(b).isalpha()]
                if letters:
                    a[letters[rng.below(len(letters))]] ^= 0x20
        a = bytes(a)
        if a not in seen:
            seen.add(a)
            mutations.append(a)
    g.append(("300 seeded random mutations of valid tags", mutations))
    # An address listed twice (in two groups) is kept in the first.
    kept, out = set(), []
    for title, items in g:
        out.append((title, [a for a in items if not (a in kept or kept.add(a))]))
    return out


class Rng:
    """A deterministic generator (SHA-256 of a seed and a counter), the same on every Python."""

    def __init__(self, seed):
        self.seed, self.n, self.pool = seed, 0, b""

    def below(self, n):
        """A number in range(n), without modulo bias."""
        limit = (1 << 32) - (1 << 32) % n
        while True:
            if len(self.pool) < 4:
                self.pool += hashlib.sha256(self.seed + self.n.to_bytes(8, "big")).digest()
                self.n += 1
            v, self.pool = int.from_bytes(self.pool[:4], "big"), self.pool[4:]
            if v < limit:
                return v % n


def encode(address):
    """One line of inputs.txt: \\\\, \\xHH for octets below 0x20, 0x7f and 0x80 and above, and
    for a # that begins the address (a # line is a comment); everything else literal."""
    out = []
    for i, b in enumerate(address):
        if b == 0x5C:
            out.append("\\\\")
        elif b < 0x20 or b >= 0x7F or (i == 0 and b == 0x23):
            out.append(f"\\x{b:02x}")
        else:
            out.append(chr(b))
    return "".join(out)


def decode(line):
    """The octets of one line of inputs.txt (without its newline). Raises ValueError."""
    out, i = bytearray(), 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            if line[i + 1:i + 2] == "\\":
                out.append(0x5C)
                i += 2
            elif line[i + 1:i + 2] == "x" and len(line) >= i + 4:
                out.append(int(line[i + 2:i + 4], 16))
                i += 4
            else:
                raise ValueError(f"bad escape at column {i + 1}")
        else:
            if ord(ch) < 0x20 or ord(ch) >= 0x7F:
                raise ValueError(f"unescaped octet 0x{ord(ch):02x} at column {i + 1}")
            out.append(ord(ch))
            i += 1
    return bytes(out)


def make():
    """The text of inputs.txt."""
    lines = [
        "# batv conformance inputs: made by tests/conformance/make_inputs.py (do not edit; run it).",
        "# One address per line. \\\\ is a backslash; \\xHH is an octet below 0x20, 0x7f or 0x80",
        "# and above, or a # that begins an address; everything else is literal. A line that",
        "# starts with # is a comment (a group); an empty line is the empty address.",
        f"# Valid tags are signed at NOW = {NOW} with the keyring of make_inputs.py.",
    ]
    for title, items in groups():
        lines.append(f"# {title}")
        lines.extend(encode(a) for a in items)
    return "\n".join(lines) + "\n"


def read(path=INPUTS):
    """The addresses of an inputs file, with their groups: [(group, octets)]."""
    out, group = [], None
    with open(path, encoding="ascii", newline="\n") as f:
        for n, line in enumerate(f.read().split("\n")[:-1], 1):
            if line.startswith("#"):
                group = line[2:]
                continue
            try:
                out.append((group, decode(line)))
            except ValueError as e:
                raise SystemExit(f"{path} line {n}: {e}")
    return out


def main():
    text = make()
    for a in (a for _, items in groups() for a in items):
        assert decode(encode(a)) == a, a
    if "--stdout" in sys.argv[1:]:
        sys.stdout.write(text)
    elif "--check" in sys.argv[1:]:
        try:
            with open(INPUTS, encoding="ascii", newline="\n") as f:
                same = f.read() == text
        except OSError as e:
            print(f"FAIL: {INPUTS}: {e}", file=sys.stderr)
            return 1
        if not same:
            print(f"FAIL: {INPUTS} differs from what make_inputs.py makes; run it", file=sys.stderr)
            return 1
    else:
        with open(INPUTS, "w", encoding="ascii", newline="\n") as f:
            f.write(text)
        print(f"wrote {INPUTS}: {sum(1 for l in text.splitlines() if not l.startswith('#'))} addresses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
