package dispatch

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// secretFile names the Secret key a container's file comes from.
type secretFile struct {
	secret string
	key    string
}

// fileFromSecret finds the Secret key behind the file at p in container c of pod: the file must lie under one of
// c's volume mounts whose volume is a Secret volume (or a projected volume's Secret source), so the dispatcher can
// read the key through the API instead of a file. It never looks at any file system. detail, when not empty, says why
// the file cannot be resolved (then the result is empty).
//
// p must be an absolute, clean path with no element starting with ".." (kubelet keeps a Secret volume's files
// behind ..data links: such paths name its internals, not a key). The deepest mount at or above p is the one the
// container sees there; a subPath mount maps p into the volume; a Secret volume's items map volume paths to keys,
// and without items each key is a file at the volume's root.
func fileFromSecret(pod *corev1.PodSpec, c *corev1.Container, p string) (secretFile, string) {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return secretFile{}, "is not an absolute, clean path"
	}
	for _, elem := range strings.Split(p, "/") {
		if strings.HasPrefix(elem, "..") {
			return secretFile{}, "has a path element starting with \"..\""
		}
	}
	var mount *corev1.VolumeMount
	for i := range c.VolumeMounts {
		mp := path.Clean(c.VolumeMounts[i].MountPath)
		if p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/") {
			if mount == nil || len(mp) > len(path.Clean(mount.MountPath)) {
				mount = &c.VolumeMounts[i]
			}
		}
	}
	if mount == nil {
		return secretFile{}, fmt.Sprintf("is not under any volume mounted in container %s", c.Name)
	}
	if mount.SubPathExpr != "" {
		return secretFile{}, fmt.Sprintf("is under volume mount %s, which uses subPathExpr", mount.MountPath)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(p, path.Clean(mount.MountPath)), "/")
	inVolume := path.Join(mount.SubPath, rel) // "." when p is the volume's root
	if inVolume == "." || inVolume == "" {
		return secretFile{}, fmt.Sprintf("is the mount point %s itself (a directory)", mount.MountPath)
	}
	var vol *corev1.Volume
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == mount.Name {
			vol = &pod.Volumes[i]
		}
	}
	switch {
	case vol == nil:
		return secretFile{}, fmt.Sprintf("is under volume mount %s, whose volume %s is not in the pod template", mount.MountPath, mount.Name)
	case vol.Secret != nil:
		if key, ok := keyAt(vol.Secret.Items, inVolume); ok {
			return secretFile{secret: vol.Secret.SecretName, key: key}, ""
		}
		return secretFile{}, fmt.Sprintf("is not a key of Secret %s as volume %s maps its files", vol.Secret.SecretName, vol.Name)
	case vol.Projected != nil:
		var candidates []secretFile
		for _, src := range vol.Projected.Sources {
			if src.Secret == nil {
				continue
			}
			if len(src.Secret.Items) > 0 {
				if key, ok := keyAt(src.Secret.Items, inVolume); ok {
					return secretFile{secret: src.Secret.Name, key: key}, ""
				}
				continue
			}
			if key, ok := keyAt(nil, inVolume); ok {
				candidates = append(candidates, secretFile{secret: src.Secret.Name, key: key})
			}
		}
		if len(candidates) == 1 {
			return candidates[0], ""
		}
		if len(candidates) > 1 {
			return secretFile{}, fmt.Sprintf("is under projected volume %s, where several Secrets without items could hold it (list the key in items)", vol.Name)
		}
		return secretFile{}, fmt.Sprintf("is not a key of a Secret in projected volume %s", vol.Name)
	default:
		return secretFile{}, fmt.Sprintf("is on volume %s, which is not a Secret volume", vol.Name)
	}
}

// keyAt returns the Secret key whose file is at p in the volume: the item with that path, or without items the key
// named p itself (Secret keys hold no "/").
func keyAt(items []corev1.KeyToPath, p string) (string, bool) {
	if len(items) == 0 {
		return p, !strings.Contains(p, "/")
	}
	for _, it := range items {
		if path.Clean(it.Path) == p {
			return it.Key, true
		}
	}
	return "", false
}
