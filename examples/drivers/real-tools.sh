#!/bin/sh
# A sketch, not run by the tests: wrapping real tools as an OpsLedger driver. Adapt the
# names, flags and outputs to the site; jq reads the call here.
#
#   opsledger serve --driver command --driver-program /opt/opsledger/real-tools.sh \
#       --driver-timeout-secs 1800
set -eu
call=$(cat)
param() { printf '%s' "$call" | jq -r ".params.$1 // empty"; }
done_() { printf '%s' "$call" | jq -r ".output.$1 // empty"; }

case "$OPSLEDGER_OPERATION/$OPSLEDGER_PHASE" in
    create_vm/do)
        # OpenStack: the server's JSON on stdout, progress on stderr (the log). The
        # run and step make the name unique, so a repeated call finds the same server.
        name="$(param hostname)"
        openstack server create --wait -f json \
            --flavor "$(param flavor)" --image "$(param image)" --network "$(param network)" \
            --property "opsledger_run=$OPSLEDGER_RUN_ID" "$name" >&2
        id=$(openstack server show -f value -c id "$name")
        jq -n --arg id "$id" --arg name "$name" '{vm_ref: $id, hostname: $name, power: "running"}'
        ;;
    create_vm/undo)
        openstack server delete --wait "$(done_ vm_ref)" >&2
        echo '{"undone": true}'
        ;;
    install_software/do)
        # Ansible: the playbook's output is the log; a failed play exits non-zero,
        # which fails the step with the last line of the log.
        ansible-playbook -i "$(param host)," site/install.yml \
            -e "package=$(param package)" >&2
        jq -n --arg p "$(param package)" '{package: $p}'
        ;;
    start_vm/do)
        # vSphere, with govc.
        govc vm.power -on "$(param vm_ref)" >&2
        echo '{"power": "running"}'
        ;;
    *)
        jq -n --arg op "$OPSLEDGER_OPERATION" '{error: ("not handled here: " + $op)}'
        exit 2
        ;;
esac
