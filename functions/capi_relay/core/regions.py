"""Small region tables for normalization: ISO 3166-1 alpha-2 codes, country aliases, US/CA states.

Pure data, cheap to import: the common case (an alpha-2 country, a US state) never loads
pycountry. Keys of the name tables are "compact": lowercase, accents removed, letters only
(see ``normalize._compact_key``).
"""

from __future__ import annotations

#: Every assigned ISO 3166-1 alpha-2 code, lowercase (the 249 pycountry lists; a unit test keeps
#: this in step with the installed pycountry).
ISO_ALPHA2: frozenset[str] = frozenset("""
ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq br
bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz
ec ee eg eh er es et fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw
gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky
kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv
mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py
qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz tc td tf tg
th tj tk tl tm tn to tr tt tv tw tz ua ug um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm
zw
""".split())

#: Common country names and codes that pycountry's exact lookup does not know (checked against
#: pycountry 26.2: ``countries.lookup`` raises LookupError for each of these).
COUNTRY_ALIASES: dict[str, str] = {
    "uk": "gb", "greatbritain": "gb", "britain": "gb", "england": "gb", "scotland": "gb",
    "wales": "gb", "northernireland": "gb", "unitedkingdom": "gb",
    "america": "us", "unitedstatesofamerica": "us", "usa": "us",
    "russia": "ru",
    "southkorea": "kr", "republicofkorea": "kr", "korearepublic": "kr",
    "northkorea": "kp",
    "czechrepublic": "cz",
    "turkey": "tr", "turkiye": "tr",
    "ivorycoast": "ci",
    "holland": "nl", "thenetherlands": "nl",
    "macedonia": "mk",
    "swaziland": "sz",
    "burma": "mm",
    "vatican": "va", "vaticancity": "va", "holysee": "va",
    "capeverde": "cv",
    "brunei": "bn",
    "palestine": "ps",
    "micronesia": "fm",
    "easttimor": "tl",
    "drcongo": "cd", "drc": "cd", "democraticrepublicofthecongo": "cd",
    "democraticrepublicofcongo": "cd", "congokinshasa": "cd",
    "republicofthecongo": "cg", "congobrazzaville": "cg",
    "macau": "mo",
    "uae": "ae", "emirates": "ae",
    "laos": "la",
    "syria": "sy",
    "iran": "ir",
    "vietnam": "vn",
    "moldova": "md",
    "tanzania": "tz",
    "venezuela": "ve",
    "bolivia": "bo",
    "taiwan": "tw",
    "deutschland": "de",
    "espana": "es",
    "osterreich": "at",
    "schweiz": "ch", "suisse": "ch",
    "italia": "it",
    "nederland": "nl",
    "polska": "pl",
    "brasil": "br",
    "mexique": "mx",
}

#: US states, DC and inhabited territories -> USPS/ANSI two-letter code.
US_STATES: dict[str, str] = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "florida": "fl", "georgia": "ga",
    "hawaii": "hi", "idaho": "id", "illinois": "il", "indiana": "in", "iowa": "ia",
    "kansas": "ks", "kentucky": "ky", "louisiana": "la", "maine": "me", "maryland": "md",
    "massachusetts": "ma", "michigan": "mi", "minnesota": "mn", "mississippi": "ms",
    "missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv", "newhampshire": "nh",
    "newjersey": "nj", "newmexico": "nm", "newyork": "ny", "northcarolina": "nc",
    "northdakota": "nd", "ohio": "oh", "oklahoma": "ok", "oregon": "or", "pennsylvania": "pa",
    "rhodeisland": "ri", "southcarolina": "sc", "southdakota": "sd", "tennessee": "tn",
    "texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va", "washington": "wa",
    "westvirginia": "wv", "wisconsin": "wi", "wyoming": "wy",
    "districtofcolumbia": "dc", "washingtondc": "dc",
    "puertorico": "pr", "guam": "gu", "americansamoa": "as", "usvirginislands": "vi",
    "virginislands": "vi", "northernmarianaislands": "mp",
}

#: Canadian provinces and territories (English and French names) -> Canada Post code.
CA_PROVINCES: dict[str, str] = {
    "alberta": "ab", "britishcolumbia": "bc", "colombiebritannique": "bc", "manitoba": "mb",
    "newbrunswick": "nb", "nouveaubrunswick": "nb",
    "newfoundlandandlabrador": "nl", "newfoundland": "nl", "terreneuveetlabrador": "nl",
    "novascotia": "ns", "nouvelleecosse": "ns", "ontario": "on",
    "princeedwardisland": "pe", "ileduprinceedouard": "pe", "quebec": "qc",
    "saskatchewan": "sk", "northwestterritories": "nt", "territoiresdunordouest": "nt",
    "nunavut": "nu", "yukon": "yt",
}

#: Subdivision names -> code, per country whose codes Meta asks for (the code sets do not overlap).
STATE_NAMES: dict[str, dict[str, str]] = {"us": US_STATES, "ca": CA_PROVINCES}

#: Valid two-letter codes per country: the named ones plus US military mail codes and the
#: US Minor Outlying Islands.
STATE_CODES: dict[str, frozenset[str]] = {
    "us": frozenset(US_STATES.values()) | {"aa", "ae", "ap", "um"},
    "ca": frozenset(CA_PROVINCES.values()),
}
