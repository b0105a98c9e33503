package main

import (
	"regexp"
	"strings"

	"github.com/disgolock/disgo/internal/rediscore"
)

// parseKey splits a key of the store's layout, "<prefix>:{<tag>}:<suffix>"
// (see rediscore.Layout.Keys), into the lock name and the suffix ("lock",
// "fence", "q", "qw"). ok is false for keys of another layout.
func parseKey(l rediscore.Layout, key string) (name, suffix string, ok bool) {
	p := l.Prefix + ":{"
	if !strings.HasPrefix(key, p) {
		return "", "", false
	}
	rest := key[len(p):]
	i := strings.Index(rest, "}:") // the tag holds no brace: they are escaped
	if i < 0 {
		return "", "", false
	}
	name, ok = l.NameOfChannel(p + rest[:i] + "}:ch")
	return name, rest[i+2:], ok
}

// splitName splits a lock name as a Locker makes it (see
// locker.Options.Namespace) into namespace and key: "<ns>:<key>" with '%'
// and ':' escaped in both, or the escaped key alone. ok is false for a name
// no Locker makes (written by a program that uses a store directly).
func splitName(name string) (ns, key string, ok bool) {
	switch strings.Count(name, ":") {
	case 0:
		k, ok := unescapeName(name)
		return "", k, ok
	case 1:
		n, k, _ := strings.Cut(name, ":")
		ns, ok1 := unescapeName(n)
		key, ok2 := unescapeName(k)
		return ns, key, ok1 && ok2 && ns != ""
	}
	return "", "", false
}

// unescapeName reverses the Locker's escaping: "%25" is '%', "%3A" is ':'.
func unescapeName(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "%25"):
			b.WriteByte('%')
		case strings.HasPrefix(s[i:], "%3A"):
			b.WriteByte(':')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// globEscape escapes the SCAN MATCH metacharacters of s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// compileGlob compiles a glob in the syntax of Redis' SCAN MATCH: '*' any
// string, '?' any character, [abc], [^abc], [a-z], and '\' quoting the next
// character. The whole string must match.
func compileGlob(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '\\':
			if i+1 < len(g) {
				i++
			}
			b.WriteString(regexp.QuoteMeta(g[i : i+1]))
		case '[':
			j := strings.IndexByte(g[i+1:], ']')
			if j < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := g[i+1 : i+1+j]
			neg := strings.HasPrefix(class, "^")
			class = strings.TrimPrefix(class, "^")
			b.WriteByte('[')
			if neg {
				b.WriteByte('^')
			}
			for k := 0; k < len(class); k++ {
				if class[k] == '-' && k > 0 && k < len(class)-1 {
					b.WriteByte('-')
					continue
				}
				b.WriteString(regexp.QuoteMeta(class[k : k+1]))
			}
			b.WriteByte(']')
			i += j + 1
		default:
			b.WriteString(regexp.QuoteMeta(g[i : i+1]))
		}
	}
	b.WriteString(`)$`)
	return regexp.Compile(b.String())
}
