/*
 * gpunas/torchfile.h — reading PyTorch checkpoints (torch.save output) without Python
 * and without executing anything.
 *
 * What torch.save writes.  torch.save(obj, f) pickles obj with Python's pickle module;
 * every tensor is pickled as a call torch._utils._rebuild_tensor_v2(storage, offset,
 * shape, stride, requires_grad, backward_hooks), and every storage as a "persistent id"
 * (pickle opcode BINPERSID) whose bytes are kept outside the pickle.  Two containers:
 *
 *   zip (torch >= 1.6, the default): a zip archive with one top-level folder PREFIX
 *     (torch 1.13 names it after the file, newer versions "archive"):
 *       PREFIX/data.pkl        the pickle (protocol 2 unless the caller asked otherwise)
 *       PREFIX/data/KEY        raw little-endian bytes of storage KEY (stored, 64-byte
 *                              aligned; a deflated entry is read as well)
 *       PREFIX/version, PREFIX/byteorder ("little"), PREFIX/.data/..., ignored except
 *                              that byteorder must be "little" when present
 *     persistent id: ('storage', torch.FloatStorage, KEY, LOCATION, NUMEL)
 *
 *   legacy (torch.save(..., _use_new_zipfile_serialization=False), torch < 1.6):
 *     five pickles back to back, then the storages:
 *       the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info
 *       dict (little_endian must not be False), the object itself, the list of storage
 *       keys; then for each key in that list: u64 little-endian element count, then
 *       count * element size raw bytes.  Bytes after the last storage are ignored (as
 *       torch.load does).
 *     persistent id: ('storage', torch.FloatStorage, KEY, LOCATION, NUMEL, None)
 *
 *   The container is chosen by the first bytes: "PK\3\4" (or "PK\5\6") is a zip, 0x80
 *   (pickle PROTO) the legacy stream, anything else is refused.
 *
 * Why nothing is executed.  A pickle is a program for a small stack machine whose
 * GLOBAL/REDUCE opcodes import and call arbitrary Python callables; loading a pickle
 * with Python runs whatever the file says (os.system, eval, ...).  The unpickler here
 * is a separate interpreter that knows a fixed list of opcodes and a fixed list of
 * "classes", each replaced by a C function that builds a value node; no other name is
 * ever resolved, and no name is executed, imported or looked up anywhere.  Allowed:
 *
 *   opcodes  PROTO (2..5, must come first), FRAME, STOP, MARK, POP, POP_MARK, DUP,
 *            NONE, NEWTRUE, NEWFALSE, BININT, BININT1, BININT2, LONG1 (at most 8
 *            bytes), BINFLOAT, BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 (UTF-8 is
 *            checked), BINBYTES, SHORT_BINBYTES, BINBYTES8, EMPTY_TUPLE, TUPLE,
 *            TUPLE1/2/3, EMPTY_LIST, LIST, APPEND, APPENDS, EMPTY_DICT, DICT, SETITEM,
 *            SETITEMS, EMPTY_SET, ADDITEMS (a set is read as a list), BINPUT,
 *            LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET, GLOBAL, STACK_GLOBAL, REDUCE,
 *            BUILD, NEWOBJ, BINPERSID.  Everything else (INST, OBJ, EXT1/2/4, PERSID,
 *            the text forms STRING/UNICODE/INT/LONG/FLOAT/GET/PUT, LONG4, NEWOBJ_EX,
 *            FROZENSET, BYTEARRAY8, NEXT_BUFFER, READONLY_BUFFER, ...) is refused.
 *   classes  collections.OrderedDict          () or ([(k, v), ...],) -> dict, BUILD
 *                                              may attach attributes (state dicts
 *                                              carry _metadata that way)
 *            torch._utils._rebuild_tensor_v2  6 args (+ a 7th: None or {}) -> tensor;
 *                                              backward_hooks must be empty
 *            torch._utils._rebuild_parameter, _rebuild_parameter_with_state
 *                                              -> the tensor argument itself
 *            torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage
 *                                              (also as torch.cuda.*: old CUDA files)
 *                                              only as the type in a persistent id
 *            argparse.Namespace               NEWOBJ with () then BUILD with a dict
 *                                              -> an object value (class + attributes)
 *            _codecs.encode (str, 'latin1')   -> bytes (how protocol 2 pickles bytes)
 *            builtins.bytes () / __builtin__.bytes ()   -> b'' (protocol 2's empty bytes)
 *            builtins.set / __builtin__.set   () or (list,) -> list (protocol 2's set)
 *   torch.UntypedStorage (torch >= 2 when a bare storage is saved) is refused: tensors
 *   in state dicts and training checkpoints use the typed storage names.
 *
 * What the tree holds.  After gn_pt_open every value is a gn_pv node owned by the file:
 * None, bool, int (int64), float (double), str (UTF-8, may contain NUL: use the length),
 * bytes, tuple, list, dict (keys of any hashable kind, insertion order kept, a key set
 * twice keeps its first position and its last value, as in Python), tensor, object
 * (argparse.Namespace).  Shared subtrees (pickle memo) are shared nodes; a container that
 * contains itself is refused.  Tensors keep dtype, shape, stride, storage offset and the
 * storage key; their data stay in the file until gn_pt_read_f32/i64 copy them out in C
 * (row-major) order, any strides allowed, so a checkpoint's data are never held twice.
 *
 * Checks at open (every one is an error, nothing is skipped or "repaired"):
 *   persistent ids are exactly ('storage', <storage type>, str, str, int) (+ None in
 *   legacy files); one key always names the same type and element count; the storage
 *   exists (zip entry PREFIX/data/KEY, or the legacy table) and holds exactly
 *   numel * element size bytes; each tensor has 0..8 dims, dims >= 0, strides >= 0,
 *   offset >= 0 and, unless it is empty, offset + sum((dim-1)*stride) < storage numel
 *   (checked 64-bit arithmetic); the pickle ends with STOP leaving exactly one value
 *   (bytes after STOP in data.pkl are ignored).
 *   Limits, so a hostile file costs bounded time and memory: data.pkl <= 1 GiB; the
 *   pickle's value tree <= 1 MiB + 128 bytes per pickle byte; stack <= 4M entries;
 *   memo indices < 1024 + bytes read so far; 512 open MARKs; values nested <= 256
 *   deep; dict keys: None/bool/int/float/str/bytes or tuples of them (nested <= 16).
 *   A storage read that covers its whole zip entry is CRC-checked by libzip.
 *
 * Errors: the library never prints.  Each failing call fills gn_error with one line
 * naming the file, where (pickle byte, storage key) and why, and returns -1, e.g.
 *   "m.pt: not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save stream)"
 *   "m.pt: zip archive is damaged or truncated (libzip: Not a zip archive)"
 *   "m.pt: data.pkl: byte 1234: opcode 0x69 ('i', INST) is not allowed in a tensor checkpoint"
 *   "m.pt: data.pkl: byte 17: class 'posix.system' is not allowed (only tensors, containers
 *    and argparse.Namespace are read; nothing is executed)"
 *   "m.pt: data.pkl: truncated at byte 96"
 *   "m.pt: storage '3': entry 'm/data/3' is missing from the zip archive"
 *   "m.pt: storage '0': entry 'm/data/0' has 20 bytes, the pickle declares 6 float32
 *    elements (24 bytes)"
 *   "m.pt: data.pkl: byte 195: tensor shape [4,3] stride [3,1] offset 2 needs 14
 *    elements of storage '0', which has 12"
 *   "m.pt: storage '5': tensor is int64; gn_pt_read_f32 reads floating-point tensors
 *    (use gn_pt_read_i64)"
 *
 * Not thread-safe per file (reads share the archive handle); distinct files may be used
 * from distinct threads.  Nodes and strings stay valid until gn_pt_close.
 */
#ifndef GPUNAS_TORCHFILE_H
#define GPUNAS_TORCHFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpunas/error.h"

#define GN_PT_MAX_DIMS 8

typedef enum {
    GN_PT_F32, GN_PT_F64, GN_PT_F16, GN_PT_BF16,
    GN_PT_I64, GN_PT_I32, GN_PT_I16, GN_PT_I8, GN_PT_U8, GN_PT_BOOL
} gn_pt_dtype;

typedef enum {
    GN_PV_NONE, GN_PV_BOOL, GN_PV_INT, GN_PV_FLOAT, GN_PV_STR, GN_PV_BYTES,
    GN_PV_TUPLE, GN_PV_LIST, GN_PV_DICT, GN_PV_TENSOR, GN_PV_OBJECT
} gn_pv_kind;

typedef struct gn_pt_file gn_pt_file; /* an open checkpoint */
typedef struct gn_pv gn_pv;           /* a value node, owned by its gn_pt_file */

/* Open, read the container and the pickle, validate every tensor and storage (see
 * above).  On success *out owns the file; on failure *out is NULL. */
int gn_pt_open(const char *path, gn_pt_file **out, gn_error *err);
void gn_pt_close(gn_pt_file *f); /* NULL is fine */

const char *gn_pt_path(const gn_pt_file *f);
const char *gn_pt_format(const gn_pt_file *f); /* "zip" or "legacy" */
const gn_pv *gn_pt_root(const gn_pt_file *f);   /* the object torch.save was given */

/* Every accessor takes NULL or a node of another kind and then returns the neutral
 * answer (0, false, 0.0, NULL). */
gn_pv_kind gn_pv_kind_of(const gn_pv *v);      /* GN_PV_NONE for NULL */
const char *gn_pv_kind_name(gn_pv_kind k);     /* "None", "bool", "int", "float", "str",
                                                  "bytes", "tuple", "list", "dict",
                                                  "tensor", "object" */

/* scalars: gn_pv_int takes int and bool; gn_pv_float takes float, int and bool */
bool gn_pv_bool(const gn_pv *v);
int64_t gn_pv_int(const gn_pv *v);
double gn_pv_float(const gn_pv *v);
/* str and bytes: NUL-terminated copy; *len (may be NULL) gets the byte length */
const char *gn_pv_str(const gn_pv *v, size_t *len);

/* tuple / list: items; dict: gn_pv_key(i) and gn_pv_item(i) in insertion order */
int gn_pv_len(const gn_pv *v);                 /* 0 for anything but tuple/list/dict */
const gn_pv *gn_pv_item(const gn_pv *v, int i);
const gn_pv *gn_pv_key(const gn_pv *v, int i); /* dicts only */
/* A dict's value for a str key (or an object's attribute); NULL if absent.  A key with
 * a NUL byte inside cannot be spelled here; walk gn_pv_key for those. */
const gn_pv *gn_pv_dict_get(const gn_pv *v, const char *key);

/* object: "argparse.Namespace"; dict: "collections.OrderedDict" or "dict"; else NULL */
const char *gn_pv_class(const gn_pv *v);
/* object: its attribute dict; OrderedDict: attributes set by BUILD (a state dict's
 * _metadata) or NULL if none; else NULL */
const gn_pv *gn_pv_state(const gn_pv *v);

typedef struct {
    gn_pt_dtype dtype;
    int ndim;                       /* 0 .. GN_PT_MAX_DIMS (0: a scalar tensor) */
    int64_t shape[GN_PT_MAX_DIMS];  /* unused entries are 0 */
    int64_t stride[GN_PT_MAX_DIMS]; /* in elements */
    int64_t offset;                 /* storage offset, in elements */
    int64_t numel;                  /* product of shape */
    const char *storage_key;        /* shared by views of one storage */
    int64_t storage_numel;          /* elements in that storage */
    bool requires_grad;
} gn_pt_tensor_info;

const gn_pt_tensor_info *gn_pv_tensor(const gn_pv *v); /* NULL unless a tensor */

const char *gn_pt_dtype_name(gn_pt_dtype t); /* "float32", "float16", "bfloat16", "int64",
                                                "bool", ... as torch prints them */
int gn_pt_dtype_size(gn_pt_dtype t);         /* bytes per element */

/* Copy a float32/float64/float16/bfloat16 tensor into dst (numel floats, C order),
 * converting to float: float16 and bfloat16 exactly (subnormals, +-inf, -0.0; NaN
 * payloads kept, float16 signaling NaNs come out quiet as torch's .float() gives),
 * float64 rounded to nearest.  Another dtype is an error naming it. */
int gn_pt_read_f32(gn_pt_file *f, const gn_pv *tensor, float *dst, gn_error *err);
/* Copy an int64/int32/int16/int8/uint8/bool tensor into dst (numel int64, C order);
 * bool bytes other than 0 read as 1.  A floating-point tensor is an error. */
int gn_pt_read_i64(gn_pt_file *f, const gn_pv *tensor, int64_t *dst, gn_error *err);

#endif
