#!/usr/bin/env bash
# The built-in corpus: the reStructuredText sources of the Python documentation, which
# Debian's and Ubuntu's python3-doc installs (tools/install_deps.sh): about 500 documents,
# 11 MB of English technical prose with code, the same text on every machine of one
# release. Tokenized by hnas_make_shards with a SentencePiece BPE model trained on the
# training documents; every 20th document (in path order) is validation.
#   tools/prepare_corpus.sh [OUTPUT_DIR [VOCAB_SIZE]]   (defaults: runs/corpus 4096)
# Writes OUTPUT_DIR/python_docs_{train,val}_000000.bin, _tokenizer.model and
# _tokenizer.txt; does nothing when they are there (delete the directory to redo).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/corpus}"
vocab="${2:-4096}"
prefix="$out/python_docs"
if [ -f "${prefix}_tokenizer.txt" ] && grep -qx "vocab_size = $vocab" "${prefix}_tokenizer.txt"; then
  echo "prepare_corpus: $prefix shards present (vocab_size $vocab)"
  exit 0
fi
sources=""
for candidate in /usr/share/doc/python3/html/_sources /usr/share/doc/python3-doc/html/_sources \
                 /usr/share/doc/python3.*-doc/html/_sources; do
  if [ -d "$candidate" ]; then sources="$candidate"; break; fi
done
if [ -z "$sources" ]; then
  echo "prepare_corpus: no Python documentation sources under /usr/share/doc; install python3-doc" \
       "(tools/install_deps.sh)" >&2
  exit 2
fi
mkdir -p "$out"
mapfile -t documents < <(find -L "$sources" -name '*.txt' -type f | LC_ALL=C sort)
echo "prepare_corpus: ${#documents[@]} documents from $sources"
./build/tools/hnas_make_shards --output-prefix "$prefix" --tokenizer sentencepiece --vocab-size "$vocab" \
  --val-every 20 "${documents[@]}"
