package sbfake

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed fake.js
var script []byte

// RheaVersion is the version of the npm package rhea the fake is written against.
const RheaVersion = "3.0.5"

// Script returns the fake's JavaScript source, to be written to a file and run with `node`, with NODE_PATH set to
// NodePath.
func Script() []byte {
	return append([]byte(nil), script...)
}

// NodePath returns the node_modules directory holding rhea, as installed by `make prereqs`:
// $KUBEDISPATCH_CACHE/node/rhea-3.0.5/node_modules (KUBEDISPATCH_CACHE defaults to ~/.cache/kubedispatch).
func NodePath() (string, error) {
	cache := os.Getenv("KUBEDISPATCH_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("locating the rhea cache: %w", err)
		}
		cache = filepath.Join(home, ".cache", "kubedispatch")
	}
	dir := filepath.Join(cache, "node", "rhea-"+RheaVersion, "node_modules")
	if _, err := os.Stat(filepath.Join(dir, "rhea", "package.json")); err != nil {
		return "", fmt.Errorf("the npm package rhea %s (for the Service Bus fake) is not installed in %s: run `make prereqs`", RheaVersion, dir)
	}
	return dir, nil
}

// Node returns the path of the node executable.
func Node() (string, error) {
	p, err := exec.LookPath("node")
	if err != nil {
		return "", errors.New("node (for the Service Bus fake) not found on PATH: run `make prereqs`, or `apt-get install nodejs npm`")
	}
	return p, nil
}

// Command returns the command that runs the fake script at scriptPath, and the environment entries it needs on top
// of the caller's.
func Command(scriptPath string) (bin string, args, env []string, err error) {
	node, err := Node()
	if err != nil {
		return "", nil, nil, err
	}
	nodePath, err := NodePath()
	if err != nil {
		return "", nil, nil, err
	}
	return node, []string{scriptPath}, []string{"NODE_PATH=" + nodePath}, nil
}

// ConnectionString returns an azservicebus connection string for the fake listening on host ("127.0.0.1:5672"). With
// no key registered in the fake, any keyName and key do; the client needs both to be non-empty.
func ConnectionString(host, keyName, key string) string {
	return fmt.Sprintf("Endpoint=sb://%s/;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true", host, keyName, key)
}

// Ports are the fake's listening ports, from the line it prints once it listens.
type Ports struct {
	AMQP    int `json:"amqpPort"`
	Control int `json:"controlPort"`
}

// ErrNoPorts is returned by ReadPorts when the output ends before the ports line.
var ErrNoPorts = errors.New("the Service Bus fake has not printed its ports")

// ReadPorts reads the fake's output (its standard output, or a log file holding it) up to the ports line, a JSON
// object {"amqpPort":N,"controlPort":M}, and returns the ports. Other lines are skipped. It returns ErrNoPorts if the
// output ends first.
func ReadPorts(r io.Reader) (Ports, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if p, ok := parsePorts(sc.Text()); ok {
			return p, nil
		}
	}
	if err := sc.Err(); err != nil {
		return Ports{}, fmt.Errorf("reading the Service Bus fake's output: %w", err)
	}
	return Ports{}, ErrNoPorts
}

func parsePorts(line string) (Ports, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "{") {
		return Ports{}, false
	}
	var p Ports
	if err := json.Unmarshal([]byte(line), &p); err != nil || p.AMQP == 0 || p.Control == 0 {
		return Ports{}, false
	}
	return p, true
}
