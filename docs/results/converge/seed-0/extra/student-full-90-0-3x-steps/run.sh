set -e
cd REPO
B=.venv/bin/o2l
W=WORK
[ -f $W/records/manifest.json ] || $B build-records --data OUT/seed-0/phantoms --out $W/records --split 90:0:10 --seed 2 --spacing native --quiet
[ -f $W/student/export.json ] || $B train --role student --records $W/records --model-dir $W/student --preset converge \
  --set train.weak_labels=none --set train.localization=false --set train.seed=0 --set train.epochs=540 \
  --set train.validate_every=180 --set train.volume_validation_every=180 --quiet
$B predict --model $W/student OUT/seed-0/test -o $W/predictions --quiet
$B evaluate --pred $W/predictions --ref OUT/seed-0/test --csv $W/evaluation.csv --json $W/evaluation.json
