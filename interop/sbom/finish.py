"""medgate's SBOM, finished and checked: cargo-cyclonedx's CycloneDX 1.5 JSON gets each
component's support level and end of support (what the FDA's premarket cybersecurity guidance
asks of an SBOM), then the CycloneDX project's own library validates it against the 1.5 JSON
schema.

    python finish.py IN OUT --end-of-support DATE   finish IN, validate, write OUT
    python finish.py --validate FILE                  validate only (exit 1 when invalid)

medgate's own crates are "actively maintained" until DATE (the manufacturer's end of support
for the release it ships); third-party crates are maintained by their upstream projects, with
no end-of-support date published ("unknown"), which is what the SBOM then says.
"""

import json
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def validate(text):
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    if error is not None:
        print(f"invalid CycloneDX 1.5: {str(error).splitlines()[0]}", file=sys.stderr)
        sys.exit(1)


def support(component, end_of_support):
    own = component.get("name", "").startswith("medgate")
    properties = component.setdefault("properties", [])
    properties.append({"name": "medgate:support-level",
                       "value": "actively maintained by the medgate project" if own else "upstream community"})
    properties.append({"name": "medgate:end-of-support", "value": end_of_support if own else "unknown"})
    for child in component.get("components", []):
        support(child, end_of_support)


def main():
    args = sys.argv[1:]
    if args[:1] == ["--validate"]:
        with open(args[1], encoding="utf-8") as f:
            validate(f.read())
        print(f"{args[1]}: valid CycloneDX 1.5")
        return
    source, out = args[0], args[1]
    end_of_support = args[args.index("--end-of-support") + 1]
    with open(source, encoding="utf-8") as f:
        bom = json.load(f)
    if bom.get("specVersion") != "1.5":
        print("not a CycloneDX 1.5 document", file=sys.stderr)
        sys.exit(1)
    support(bom["metadata"]["component"], end_of_support)
    for component in bom.get("components", []):
        support(component, end_of_support)
    text = json.dumps(bom, indent=1)
    validate(text)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(f"{out}: CycloneDX 1.5, {len(bom.get('components', []))} components, valid")


if __name__ == "__main__":
    main()
