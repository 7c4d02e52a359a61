# Sourced by reproduce.sh and lab.sh: the data root of the README (../shared/data unless
# SAUNETV2_DATA is set), unset with a note when it does not exist.
export SAUNETV2_DATA="${SAUNETV2_DATA:-$(cd .. && pwd)/shared/data}"
if [ ! -d "$SAUNETV2_DATA" ]; then
    echo "note: $SAUNETV2_DATA does not exist; the companion falls back to its synthetic DRIVE" >&2
    unset SAUNETV2_DATA
fi
