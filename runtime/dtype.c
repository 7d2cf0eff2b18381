/* dtype.c - element sizes and safetensors names of tm_dtype. */
#include "tmrun.h"

size_t tm_dtype_size(tm_dtype dtype)
{
    switch (dtype) {
    case TM_F32: return 4;
    case TM_F16: return 2;
    case TM_BF16: return 2;
    case TM_I32: return 4;
    case TM_I64: return 8;
    case TM_I16: return 2;
    case TM_I8: return 1;
    case TM_U8: return 1;
    case TM_BOOL: return 1;
    case TM_F64: return 8;
    }
    return 0; /* not a tm_dtype: callers treat size 0 as invalid */
}

const char *tm_dtype_name(tm_dtype dtype)
{
    switch (dtype) {
    case TM_F32: return "F32";
    case TM_F16: return "F16";
    case TM_BF16: return "BF16";
    case TM_I32: return "I32";
    case TM_I64: return "I64";
    case TM_I16: return "I16";
    case TM_I8: return "I8";
    case TM_U8: return "U8";
    case TM_BOOL: return "BOOL";
    case TM_F64: return "F64";
    }
    return "INVALID";
}
