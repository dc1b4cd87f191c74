// Template oracle for Ferry's differential tests: renders cases with Go's text/template and the
// Sprig functions VSO allows, so the TypeScript engine can be compared byte for byte.
//
// stdin:  JSON array of {name, templates: [{name, text}], entry, data, jsonNumber?, allowed}
// stdout: JSON array of {output} | {error, phase}
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

type source struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

type testCase struct {
	Name       string          `json:"name"`
	Templates  []source        `json:"templates"`
	Entry      string          `json:"entry"`
	Data       json.RawMessage `json:"data"`
	JSONNumber bool            `json:"jsonNumber"`
}

type result struct {
	Output *string `json:"output,omitempty"`
	Error  string  `json:"error,omitempty"`
	Phase  string  `json:"phase,omitempty"`
}

func funcMap(allowed []string) template.FuncMap {
	all := sprig.TxtFuncMap()
	out := template.FuncMap{}
	for _, name := range allowed {
		f, ok := all[name]
		if !ok {
			panic("sprig lacks " + name)
		}
		out[name] = f
	}
	return out
}

func run(c testCase, funcs template.FuncMap) (res result) {
	defer func() {
		if r := recover(); r != nil {
			res = result{Error: fmt.Sprint("panic: ", r), Phase: "exec"}
		}
	}()
	var data any
	if len(c.Data) > 0 {
		dec := json.NewDecoder(bytes.NewReader(c.Data))
		if c.JSONNumber {
			dec.UseNumber()
		}
		if err := dec.Decode(&data); err != nil {
			return result{Error: "bad data: " + err.Error(), Phase: "data"}
		}
	}
	var root *template.Template
	for _, s := range c.Templates {
		var t *template.Template
		if root == nil {
			root = template.New(s.Name).Funcs(funcs)
			t = root
		} else {
			t = root.New(s.Name)
		}
		if _, err := t.Parse(s.Text); err != nil {
			return result{Error: err.Error(), Phase: "parse"}
		}
	}
	if root == nil {
		return result{Error: "no templates", Phase: "parse"}
	}
	var buf strings.Builder
	if err := root.ExecuteTemplate(&buf, c.Entry, data); err != nil {
		return result{Error: err.Error(), Phase: "exec"}
	}
	s := buf.String()
	return result{Output: &s}
}

func main() {
	var input struct {
		Allowed []string   `json:"allowed"`
		Cases   []testCase `json:"cases"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
		fmt.Fprintln(os.Stderr, "decode input:", err)
		os.Exit(2)
	}
	funcs := funcMap(input.Allowed)
	out := make([]result, len(input.Cases))
	for i, c := range input.Cases {
		out[i] = run(c, funcs)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "encode output:", err)
		os.Exit(2)
	}
}
