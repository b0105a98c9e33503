package rediscore

import (
	"regexp"
	"slices"
	"strings"
)

// Scripts are assembled from their source and the helper libraries
// (lib.lua, then kindlib.lua for the kinds' scripts): each gets only the
// helpers it uses, so that a call does not build closures it never runs.
// Redis runs a script's whole chunk on every call, and each "local
// function" in it makes a closure then; on the uncontended path that cost
// more server time than the script's own logic.
//
// A script may hold the line HelpersMark at its top level. The helpers that
// the code above the mark uses (and the helpers those use) are defined
// right after the script's header comment; the others only at the mark. So
// a script whose common case returns above the mark builds only the
// closures of that case.

// HelpersMark is the line of a script source where the helpers used only
// below it are defined.
const HelpersMark = "--@helpers"

// helper is one top-level definition of a helper library: "local function
// name(...) ... end" or "local NAME = ...", with the comment lines right
// above it.
type helper struct {
	name string
	text string   // ends with a newline
	uses []string // the earlier helpers its code names
}

var (
	defLine   = regexp.MustCompile(`^local (?:function )?([A-Za-z_][A-Za-z0-9_]*)\b`)
	identRe   = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
	commentRe = regexp.MustCompile(`--.*`)
)

// code returns src without its comments, for finding the names it uses.
// The scripts have no "--" inside a string literal (see
// TestScriptsHaveNoDashesInStrings), so this finds every name they use.
func code(src string) string { return commentRe.ReplaceAllString(src, "") }

// names returns the identifiers of src's code.
func names(src string) map[string]bool {
	out := map[string]bool{}
	for _, id := range identRe.FindAllString(code(src), -1) {
		out[id] = true
	}
	return out
}

// parseHelpers splits helper libraries into their definitions, in order.
// What comes before a library's first definition and its comment (the
// library's own header) is left out.
func parseHelpers(libs ...string) []helper {
	var hs []helper
	for _, lib := range libs {
		lines := strings.SplitAfter(lib, "\n")
		start := -1 // first line of the current definition, with its comment
		flush := func(end int) {
			if start < 0 {
				return
			}
			text := strings.TrimRight(strings.Join(lines[start:end], ""), "\n") + "\n"
			var name string
			for _, l := range lines[start:end] {
				if m := defLine.FindStringSubmatch(l); m != nil {
					name = m[1]
					break
				}
			}
			hs = append(hs, helper{name: name, text: text})
		}
		for i, l := range lines {
			if !defLine.MatchString(l) {
				continue
			}
			c := i // take the comment lines right above it
			for c > 0 && strings.HasPrefix(lines[c-1], "--") {
				c--
			}
			flush(c)
			start = c
		}
		flush(len(lines))
	}
	for i := range hs {
		used := names(hs[i].text)
		for _, e := range hs[:i] {
			if used[e.name] {
				hs[i].uses = append(hs[i].uses, e.name)
			}
		}
	}
	return hs
}

// needed returns the helpers of hs that src uses, directly or through
// other helpers.
func needed(hs []helper, src string) map[string]bool {
	used := names(src)
	need := map[string]bool{}
	// A helper uses only earlier ones, so one pass from the last finds all.
	for i := len(hs) - 1; i >= 0; i-- {
		if used[hs[i].name] || need[hs[i].name] {
			need[hs[i].name] = true
			for _, u := range hs[i].uses {
				need[u] = true
			}
		}
	}
	return need
}

// assemble returns script src with the helpers of hs (see parseHelpers) it
// uses: after its header comment (its leading comment lines) those the code
// above HelpersMark uses, at the mark those only the code below it uses.
// Without the mark, every helper it uses comes after the header.
func assemble(src string, hs []helper) string {
	lines := strings.SplitAfter(src, "\n")
	h := 0
	for h < len(lines) && strings.HasPrefix(lines[h], "--") && strings.TrimSpace(lines[h]) != HelpersMark {
		h++
	}
	header, body := strings.Join(lines[:h], ""), strings.Join(lines[h:], "")
	above, below, marked := cutMark(body)
	needAbove, needBelow := needed(hs, above), needed(hs, below)
	defs := func(need map[string]bool, skip map[string]bool) string {
		var b strings.Builder
		for _, x := range hs {
			if need[x.name] && !skip[x.name] {
				b.WriteString(x.text)
			}
		}
		return b.String()
	}
	out := header + defs(needAbove, nil) + above
	if marked {
		out += HelpersMark + "\n" + defs(needBelow, needAbove) + below
	}
	return out
}

// cutMark splits body at its HelpersMark line.
func cutMark(body string) (above, below string, marked bool) {
	lines := strings.SplitAfter(body, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.TrimRight(l, "\r\n") == HelpersMark })
	if i < 0 {
		return body, "", false
	}
	return strings.Join(lines[:i], ""), strings.Join(lines[i+1:], ""), true
}
