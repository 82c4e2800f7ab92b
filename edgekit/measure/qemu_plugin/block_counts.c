/*
 * block_counts: a QEMU TCG plugin that counts how often each translated block executes.
 *
 * Built for QEMU 7.2 (plugin API version 1), which Debian 12's qemu-user accepts with
 * `-plugin file=block_counts.so,out=FILE,mark=NR` (7.2 deprecates the `arg=` form) but ships without qemu-plugin.h:
 * the few declarations used are written out below with their 7.2 signatures (the inline-op
 * API gained a per-vCPU scoreboard form in 8.x; the plain form here is the 7.2 one).
 *
 * Each translation gets a record (guest vaddr, instruction count, the instruction bytes) and an
 * inline `count += 1` at its start, so counting costs a memory add, not a helper call. A block
 * translated twice (the TB cache was flushed) has two records; the reader merges them.
 *
 * Window: the guest marks the span to measure by calling lseek(MARK_FD, 0, SEEK_CUR) on a file
 * descriptor no process has (the kernel answers EBADF, so a native run is unchanged). The
 * first marker snapshots every counter, the second snapshots them again; the file holds the
 * difference. Without two markers it holds the counts of the whole run. One vCPU is assumed
 * (the counters are not atomic): run the guest with one thread.
 *
 * Output, one line per block that executed in the window:
 *   COUNT VADDR NINSNS INSN_SIZES HEXBYTES     (INSN_SIZES: comma-separated byte sizes)
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                              uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

/* The marker's file descriptor: "ek" in ASCII, negated so that no real descriptor has it.
 * Compared on the low 32 bits: the guest passes an int. */
#define MARK_FD ((uint32_t)-0x656b)

struct block {
  uint64_t count;  /* first: the inline add targets it */
  uint64_t start;  /* count at the first marker */
  uint64_t end;    /* count at the second marker */
  uint64_t vaddr;
  size_t n_insns;
  size_t n_bytes;
  uint8_t *sizes;
  uint8_t *bytes;
};

static struct block **blocks;
static size_t n_blocks, cap_blocks;
static char *out_path;
static int64_t mark_syscall = -1;
static int marks;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  struct block *b = calloc(1, sizeof *b);
  b->vaddr = qemu_plugin_tb_vaddr(tb);
  b->n_insns = qemu_plugin_tb_n_insns(tb);
  b->sizes = malloc(b->n_insns ? b->n_insns : 1);
  size_t total = 0;
  for (size_t i = 0; i < b->n_insns; i++) total += qemu_plugin_insn_size(qemu_plugin_tb_get_insn(tb, i));
  b->bytes = malloc(total ? total : 1);
  for (size_t i = 0; i < b->n_insns; i++) {
    const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    size_t size = qemu_plugin_insn_size(insn);
    memcpy(b->bytes + b->n_bytes, qemu_plugin_insn_data(insn), size);
    b->sizes[i] = (uint8_t)size;
    b->n_bytes += size;
  }
  /* A block first translated after the first marker started the window at 0. */
  if (n_blocks == cap_blocks) {
    cap_blocks = cap_blocks ? 2 * cap_blocks : 4096;
    blocks = realloc(blocks, cap_blocks * sizeof *blocks);
  }
  blocks[n_blocks++] = b;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->count, 1);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
  (void)id; (void)vcpu; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
  if (num != mark_syscall || (uint32_t)a1 != MARK_FD || marks >= 2) return;
  for (size_t i = 0; i < n_blocks; i++) {
    if (marks == 0) blocks[i]->start = blocks[i]->count;
    else blocks[i]->end = blocks[i]->count;
  }
  marks++;
}

static void write_counts(qemu_plugin_id_t id, void *userdata) {
  (void)id; (void)userdata;
  FILE *f = fopen(out_path, "w");
  if (!f) {
    fprintf(stderr, "block_counts: cannot write %s\n", out_path);
    return;
  }
  fprintf(f, "# block_counts v1 window=%s\n", marks >= 2 ? "marked" : "whole-run");
  for (size_t i = 0; i < n_blocks; i++) {
    struct block *b = blocks[i];
    uint64_t count = marks >= 2 ? b->end - b->start : b->count;
    if (!count) continue;
    fprintf(f, "%" PRIu64 " %" PRIx64 " %zu ", count, b->vaddr, b->n_insns);
    for (size_t k = 0; k < b->n_insns; k++) fprintf(f, k ? ",%u" : "%u", b->sizes[k]);
    fputc(' ', f);
    for (size_t k = 0; k < b->n_bytes; k++) fprintf(f, "%02x", b->bytes[k]);
    fputc('\n', f);
  }
  fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv) {
  (void)info;
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "out=", 4) == 0) out_path = strdup(argv[i] + 4);
    else if (strncmp(argv[i], "mark=", 5) == 0) mark_syscall = strtoll(argv[i] + 5, NULL, 10);
    else {
      fprintf(stderr, "block_counts: unknown argument %s (want out=FILE, mark=SYSCALL_NR)\n", argv[i]);
      return -1;
    }
  }
  if (!out_path) {
    fprintf(stderr, "block_counts: missing out=FILE\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  if (mark_syscall >= 0) qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
  qemu_plugin_register_atexit_cb(id, write_counts, NULL);
  return 0;
}
