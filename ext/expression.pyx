# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""BandArithmetic method 0: a band-math expression compiled to a postfix program, run per pixel without the GIL.

Row by row, each operator one tight loop over a row held in a small stack of row buffers: no temporary array of
the block's size per operator (numpy's way), and loops the compiler vectorises.  The validating wrapper is imgsvc.functions.expression (``compile_program``/``evaluate``):
it checks the program, the stack depth and the arrays before calling here, so the loop cannot fail.
"""
from libc.math cimport fabs, sqrt, exp, log, log10, sin, cos, tan, pow, isfinite
from libc.stdlib cimport free, malloc

from interpolation cimport pixel_t

# Opcodes: keep in step with imgsvc.functions.expression.OPCODES.
cdef enum:
    OP_BAND = 0
    OP_CONST = 1
    OP_NEG = 2
    OP_ADD = 3
    OP_SUB = 4
    OP_MUL = 5
    OP_DIV = 6
    OP_ABS = 7
    OP_SQRT = 8
    OP_EXP = 9
    OP_LN = 10
    OP_LOG10 = 11
    OP_SIN = 12
    OP_COS = 13
    OP_TAN = 14
    OP_POW = 15
    OP_MIN = 16
    OP_MAX = 17
    MAX_STACK = 64

cdef double FLOAT32_MAX = 3.4028234663852886e38

MAX_STACK_DEPTH = MAX_STACK


cdef void _row(const int[::1] ops, const double[::1] args, const pixel_t[:, :, ::1] bands, Py_ssize_t r,
               double* stack, Py_ssize_t cols) noexcept nogil:
    """Run the program over row ``r``: the stack holds whole rows (``cols`` doubles each), so each operator is one
    tight loop over the row, which the compiler vectorises."""
    cdef Py_ssize_t top = 0, i, c, n = ops.shape[0], band
    cdef int op
    cdef double* a
    cdef double* b
    cdef double constant
    for i in range(n):
        op = ops[i]
        if op == OP_BAND:
            a = stack + top * cols
            band = <Py_ssize_t>args[i]
            for c in range(cols):
                a[c] = <double>bands[band, r, c]
            top += 1
        elif op == OP_CONST:
            a = stack + top * cols
            constant = args[i]
            for c in range(cols):
                a[c] = constant
            top += 1
        elif op == OP_NEG:
            a = stack + (top - 1) * cols
            for c in range(cols):
                a[c] = -a[c]
        elif op <= OP_DIV or op >= OP_POW:
            top -= 1
            a = stack + (top - 1) * cols
            b = stack + top * cols
            if op == OP_ADD:
                for c in range(cols):
                    a[c] = a[c] + b[c]
            elif op == OP_SUB:
                for c in range(cols):
                    a[c] = a[c] - b[c]
            elif op == OP_MUL:
                for c in range(cols):
                    a[c] = a[c] * b[c]
            elif op == OP_DIV:
                for c in range(cols):
                    a[c] = a[c] / b[c]
            elif op == OP_POW:
                for c in range(cols):
                    a[c] = pow(a[c], b[c])
            elif op == OP_MIN:
                for c in range(cols):
                    a[c] = a[c] if a[c] <= b[c] else b[c]
            else:
                for c in range(cols):
                    a[c] = a[c] if a[c] >= b[c] else b[c]
        else:
            a = stack + (top - 1) * cols
            if op == OP_ABS:
                for c in range(cols):
                    a[c] = fabs(a[c])
            elif op == OP_SQRT:
                for c in range(cols):
                    a[c] = sqrt(a[c])
            elif op == OP_EXP:
                for c in range(cols):
                    a[c] = exp(a[c])
            elif op == OP_LN:
                for c in range(cols):
                    a[c] = log(a[c])
            elif op == OP_LOG10:
                for c in range(cols):
                    a[c] = log10(a[c])
            elif op == OP_SIN:
                for c in range(cols):
                    a[c] = sin(a[c])
            elif op == OP_COS:
                for c in range(cols):
                    a[c] = cos(a[c])
            else:
                for c in range(cols):
                    a[c] = tan(a[c])


def evaluate(const int[::1] ops, const double[::1] args, const pixel_t[:, :, ::1] bands,
             const unsigned char[:, ::1] valid, float[:, ::1] out, unsigned char[:, ::1] out_valid):
    """out = the program's value per pixel as float32; out_valid = valid and the value finite within float32
    (division by zero, logs of negatives and overflow are NoData, holding 0)."""
    cdef Py_ssize_t rows = out.shape[0], cols = out.shape[1], r, c
    cdef double value
    cdef double* stack = <double*>malloc(MAX_STACK * max(cols, 1) * sizeof(double))
    if stack == NULL:
        raise MemoryError()
    try:
        with nogil:
            for r in range(rows):
                _row(ops, args, bands, r, stack, cols)
                for c in range(cols):
                    value = stack[c]
                    if valid[r, c] and isfinite(value) and fabs(value) <= FLOAT32_MAX:
                        out[r, c] = <float>value
                        out_valid[r, c] = 1
                    else:
                        out[r, c] = 0
                        out_valid[r, c] = 0
    finally:
        free(stack)
