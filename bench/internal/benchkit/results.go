package benchkit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// WriteResults writes bench/results/<name>-<UTC timestamp of date>.md (report) and .json (r) under root, and
// overwrites bench/results/<latest> with report.
func WriteResults(root, name, latest string, date time.Time, r any, report string) error {
	dir := filepath.Join(root, "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the results: %w", err)
	}
	base := filepath.Join(dir, name+"-"+date.Format("20060102T150405Z"))
	latestPath := filepath.Join(dir, latest)
	files := map[string][]byte{base + ".md": []byte(report), base + ".json": append(js, '\n'), latestPath: []byte(report)}
	for path, content := range files {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	Step("Results written to %s.{md,json} and %s", base, latestPath)
	return nil
}
