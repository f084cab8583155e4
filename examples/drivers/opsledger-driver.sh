#!/bin/sh
# An example OpsLedger command driver: it handles every operation, done and undone, by
# pretending. What it "creates" is a file under $OPSLEDGER_DRIVER_STATE (default: a
# directory in $TMPDIR), so an undo really removes what the do made, and the same call
# always gets the same answer.
#
#   opsledger serve --driver command --driver-program examples/drivers/opsledger-driver.sh
#
# The protocol: the call is one JSON object on standard input; answer with one JSON
# object on standard output (the step's outputs), write the log on standard error, and
# exit 0. Any other exit status is a failure; print {"error": "..."} to say why.
#
# The call's operation, phase, run and step are also in the environment, so only the
# parameters need reading from the JSON. This example picks known fields out with sed
# (the input is compact JSON: "name":"value"); a real driver should use a JSON parser
# (jq, python3, or the tool's own language).
set -eu

input=$(cat)
op=${OPSLEDGER_OPERATION:?the call names no operation}
phase=${OPSLEDGER_PHASE:-do}
run=${OPSLEDGER_RUN_ID:-00000000-0000-0000-0000-000000000000}
step=${OPSLEDGER_STEP:-step}
state=${OPSLEDGER_DRIVER_STATE:-${TMPDIR:-/tmp}/opsledger-driver}
short=${run##*-}

log() { printf 'driver: %s\n' "$*" >&2; }

# The string field NAME (its last occurrence: for an undo, what the step answered
# comes after the parameters).
str() { printf '%s' "$input" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
# The number field NAME.
num() { printf '%s' "$input" | sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p"; }
# The flat object field NAME (no nested objects), or {}.
obj() {
    found=$(printf '%s' "$input" | sed -n "s/.*\"$1\":\({[^{}]*}\).*/\1/p")
    [ -n "$found" ] || found='{}'
    printf '%s' "$found"
}

# Creates the record KIND/REF, removes it on undo.
record() {
    mkdir -p "$state/$1"
    printf '%s\n' "$run $step" > "$state/$1/$2"
    log "recorded $1/$2"
}
forget() {
    if [ -n "$2" ] && [ -e "$state/$1/$2" ]; then
        rm -f "$state/$1/$2"
        log "removed $2"
    else
        log "nothing to remove for $1/${2:-?}"
    fi
}

log "$op $phase (run $run, step $step)"

if [ "$phase" = undo ]; then
    case "$op" in
        create_vm) forget vms "$(str vm_ref)" ;;
        create_volume) forget volumes "$(str volume_ref)" ;;
        deploy_image) forget images "$short-$step" ;;
        install_software) forget packages "$(str restore_point)" ;;
        backup_vm) forget backups "$(str backup_ref)" ;;
        start_vm) log "powering $(str vm_ref) off again" ;;
        stop_vm) log "powering $(str vm_ref) on again" ;;
        delete_vm)
            ref=$(str vm_ref)
            if [ -e "$state/deleted/$ref" ]; then
                mkdir -p "$state/vms" && mv "$state/deleted/$ref" "$state/vms/$ref"
                log "brought $ref back"
            fi
            ;;
        run_script | restart_vm | restore_vm | collect_configuration) log "nothing to undo" ;;
        *)
            printf '{"error":"unknown operation %s"}\n' "$op"
            exit 2
            ;;
    esac
    echo '{"undone":true}'
    exit 0
fi

case "$op" in
    create_vm)
        ref="vm-$short-$step"
        host=$(str hostname)
        record vms "$ref"
        printf '{"vm_ref":"%s","power":"running","hostname":"%s"}\n' "$ref" "${host:-vm-$short}"
        ;;
    create_volume)
        ref="vol-$short-$step"
        size=$(num size_gb)
        record volumes "$ref"
        printf '{"volume_ref":"%s","size_gb":%s}\n' "$ref" "${size:-0}"
        ;;
    deploy_image)
        record images "$short-$step"
        printf '{"image":"%s","os":"%s"}\n' "$(str image)" "$(str os)"
        ;;
    install_software)
        ref="rp-$short-$step"
        record packages "$ref"
        printf '{"package":"%s","restore_point":"%s"}\n' "$(str package)" "$ref"
        ;;
    run_script)
        log "no library script given: nothing to run"
        echo '{"exit_code":0}'
        ;;
    start_vm | restart_vm) echo '{"power":"running"}' ;;
    stop_vm) echo '{"power":"stopped"}' ;;
    backup_vm)
        ref="backup-$short-$step"
        disk=$(num disk_gb)
        record backups "$ref"
        printf '{"backup_ref":"%s","size_bytes":%s}\n' "$ref" "$(( ${disk:-40} * 268435456 ))"
        ;;
    restore_vm)
        printf '{"power":"running","restored_from":"%s"}\n' "$(str backup_ref)"
        ;;
    delete_vm)
        ref=$(str vm_ref)
        if [ -n "$ref" ] && [ -e "$state/vms/$ref" ]; then
            mkdir -p "$state/deleted" && mv "$state/vms/$ref" "$state/deleted/$ref"
            log "deleted $ref"
        fi
        echo '{"power":"deleted"}'
        ;;
    collect_configuration)
        # What is there is what the baseline expects: edit a setting here to see drift.
        printf '{"settings":%s}\n' "$(obj expected)"
        ;;
    *)
        printf '{"error":"unknown operation %s"}\n' "$op"
        exit 2
        ;;
esac
