"""Writes the small MaxMind-format (.mmdb) test databases next to this script.

Run from anywhere (needs the PyPI packages `mmdb-writer` and `netaddr`):

    python3 -m venv /tmp/mmdb && /tmp/mmdb/bin/pip install mmdb-writer netaddr
    /tmp/mmdb/bin/python tracker/tests/data/make_mmdb.py

The records follow the layouts of the real databases, trimmed to the fields the tracker reads:
- asn.mmdb: GeoLite2-ASN (`autonomous_system_number`, `autonomous_system_organization`).
- city.mmdb: GeoLite2-City (`continent.code`, `country.iso_code`, `subdivisions[].iso_code`).
- enterprise.mmdb: GeoIP2-Enterprise, both kinds in one file (`traits.autonomous_system_number`).
asn.mmdb also has a malformed record (233.252.0.0/24, the AS number as a string).
All three are IPv6 databases holding IPv4 networks in the IPv4 subtree, like MaxMind's.
"""

import os

from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPSet

HERE = os.path.dirname(os.path.abspath(__file__))


def names(en):
    return {"en": en, "fr": en}


def place(iso, en, key="iso_code"):
    return {key: iso, "geoname_id": MmdbU32(1000), "names": names(en)}


def write(file, database_type, records):
    writer = MMDBWriter(
        ip_version=6,
        database_type=database_type,
        languages=["en"],
        description="Swarmcast tracker test data",
        ipv4_compatible=True,
    )
    for network, record in records:
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(os.path.join(HERE, file))


def asn(number, org):
    return {"autonomous_system_number": MmdbU32(number), "autonomous_system_organization": org}


EU = place("EU", "Europe", key="code")
NA = place("NA", "North America", key="code")
AS = place("AS", "Asia", key="code")

write(
    "asn.mmdb",
    "GeoLite2-ASN",
    [
        ("198.51.100.0/24", asn(64600, "Example Net")),
        ("203.0.113.0/24", asn(64600, "Example Net")),
        ("10.0.0.0/8", asn(64999, "Shadowed by the operator table")),
        ("2001:db8:100::/40", asn(64601, "Example Six")),
        ("2001:db8:200::/40", asn(64601, "Example Six")),
        # Not shaped as the tracker expects: looking it up is an error.
        ("233.252.0.0/24", {"autonomous_system_number": "AS64602"}),
    ],
)

write(
    "city.mmdb",
    "GeoLite2-City",
    [
        (
            "198.51.100.0/24",
            {"continent": EU, "country": place("FR", "France"), "subdivisions": [place("IDF", "Ile-de-France")]},
        ),
        ("203.0.113.0/24", {"continent": EU, "country": place("DE", "Germany")}),
        ("192.0.2.0/24", {"continent": AS}),
        ("10.0.0.0/8", {"continent": AS, "country": place("JP", "Japan")}),
        (
            "2001:db8:100::/40",
            {
                "continent": NA,
                "country": place("US", "United States"),
                "subdivisions": [place("CA", "California"), place("LA", "Los Angeles County")],
            },
        ),
    ],
)

write(
    "enterprise.mmdb",
    "GeoIP2-Enterprise",
    [
        (
            "198.51.100.0/24",
            {
                "continent": EU,
                "country": place("FR", "France"),
                "subdivisions": [place("IDF", "Ile-de-France")],
                "traits": {"autonomous_system_number": MmdbU32(64700), "isp": "Example ISP"},
            },
        ),
        ("2001:db8:100::/40", {"country": place("US", "United States"), "traits": {"is_anycast": True}}),
    ],
)
