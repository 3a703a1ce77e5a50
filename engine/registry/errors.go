package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// apiError is an error of the distribution API: an HTTP status and one of
// the spec's error codes, sent as {"errors":[{code,message,detail}]}.
type apiError struct {
	Status  int
	Code    string
	Message string
	Detail  any
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func (e *apiError) write(w http.ResponseWriter) {
	type item struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail,omitempty"`
	}
	body, _ := json.Marshal(struct {
		Errors []item `json:"errors"`
	}{[]item{{e.Code, e.Message, e.Detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	w.Write(body)
}

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func errBlobUnknown(d string) *apiError {
	return errf(http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry: %s", d)
}

func errManifestUnknown(ref string) *apiError {
	return errf(http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown: %s", ref)
}

func errNameUnknown(name string) *apiError {
	return errf(http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry: %s", name)
}

func errNameInvalid(name string) *apiError {
	return errf(http.StatusBadRequest, "NAME_INVALID", "invalid repository name: %q", name)
}

func errDigestInvalid(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "DIGEST_INVALID", format, args...)
}

func errUploadUnknown(id string) *apiError {
	return errf(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry: %s", id)
}

func errUploadInvalid(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "BLOB_UPLOAD_INVALID", format, args...)
}

func errManifestInvalid(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "MANIFEST_INVALID", format, args...)
}

func errUnsupported(format string, args ...any) *apiError {
	return errf(http.StatusMethodNotAllowed, "UNSUPPORTED", format, args...)
}

func errInternal(err error) *apiError {
	return errf(http.StatusInternalServerError, "UNKNOWN", "internal error: %v", err)
}

var errUnauthorized = &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: "authentication required"}
