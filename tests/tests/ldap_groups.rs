//! The directory through the management API, against a real OpenLDAP
//! (`slapd`, the fixture's alice, bob and carol, groups developers and
//! registry-admins): ping, user and group searches (what is typed is
//! escaped), users imported and made members before their first login,
//! LDAP groups recorded under `/usergroups`, made members by id, and
//! their memberships gone with them; harborapi drives it through
//! Harbor's models.
#![allow(clippy::unwrap_used)]

#[path = "../../auth/tests/support/slapd.rs"]
mod slapd;

use berth_tests::tools::text;
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::{json, Value};
use slapd::{Slapd, ADMINS_DN, BOB, CAROL, DEVELOPERS_DN, GROUPS_DN, PEOPLE_DN, READER_DN};

/// berth in LDAP mode with groups searched under the fixture's groups.
fn berth_with_ldap(slapd: &Slapd) -> Berth {
    Berth::start_with_env(&[
        ("BERTH_AUTH__MODE", "ldap"),
        ("BERTH_LDAP__URL", &slapd.url()),
        ("BERTH_LDAP__SEARCH_DN", READER_DN),
        ("BERTH_LDAP__SEARCH_PASSWORD", slapd::READER_PASSWORD),
        ("BERTH_LDAP__BASE_DN", PEOPLE_DN),
        ("BERTH_LDAP__FILTER", "(objectClass=inetOrgPerson)"),
        ("BERTH_LDAP__UID", "uid"),
        ("BERTH_LDAP__GROUP_MEMBERSHIP_ATTRIBUTE", "memberOf"),
        ("BERTH_LDAP__GROUP_BASE_DN", GROUPS_DN),
        ("BERTH_LDAP__GROUP_FILTER", "(objectClass=groupOfNames)"),
        ("BERTH_LDAP__GROUP_GID", "cn"),
    ])
}

fn names(answer: &Value, key: &str) -> Vec<String> {
    let mut names: Vec<String> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn directory_users_and_groups_are_searched_imported_and_made_members() {
    let slapd = Slapd::start();
    let berth = berth_with_ldap(&slapd);
    let admin = Api::admin(&berth);
    admin.create_project("team", false);

    let (status, _, answer) = admin.post("/ldap/ping", &json!({}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["success"], true, "{answer}");
    let (status, _, answer) = admin.post("/ldap/ping", &json!({"ldap_url": "ldap://elsewhere"}));
    assert_eq!(status, 400, "{answer}");

    // Users: by uid, all, and a pattern taken literally.
    let (status, _, answer) = admin.get("/ldap/users/search?username=bob");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!([{"username": "bob", "realname": BOB.display_name, "email": BOB.mail}])
    );
    let (_, _, answer) = admin.get("/ldap/users/search?username=");
    assert_eq!(names(&answer, "username"), ["alice", "bob", "carol"]);
    let (_, _, answer) = admin.get("/ldap/users/search?username=*");
    assert_eq!(answer, json!([]), "a `*` typed is not a wildcard");
    let (_, _, answer) = admin.get("/ldap/users/search?username=b*)(uid%3D*");
    assert_eq!(answer, json!([]));

    // Groups: by name, all, by DN.
    let (status, _, answer) = admin.get("/ldap/groups/search?groupname=developers");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!([{"group_name": "developers", "group_type": 1, "ldap_group_dn": DEVELOPERS_DN}])
    );
    let (_, _, answer) = admin.get("/ldap/groups/search?groupname=");
    assert_eq!(
        names(&answer, "group_name"),
        ["developers", "registry-admins"]
    );
    let (_, _, answer) = admin.get(&format!("/ldap/groups/search?groupdn={ADMINS_DN}"));
    assert_eq!(names(&answer, "group_name"), ["registry-admins"]);
    let (status, _, answer) =
        admin.get("/ldap/groups/search?groupdn=cn=nobody,ou=groups,dc=example,dc=org");
    assert_eq!((status, answer), (200, json!([])));

    // carol is imported and made a Developer before she ever logs in.
    let (status, _, answer) = admin.post(
        "/ldap/users/import",
        &json!({"ldap_uid_list": ["carol", "nobody"]}),
    );
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer[0]["uid"], "nobody", "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 1, "{answer}");
    admin.add_member("team", "carol", 2);
    let carol = Registry::with_basic_auth(&berth.url(), CAROL.uid, CAROL.password);
    carol.push_image("team/app", "1", &Image::random(1));
    let (_, _, users) = admin.get("/users/search?username=carol");
    assert_eq!(names(&users, "username"), ["carol"], "{users}");

    // A list with one bad uid records none of them.
    let (status, _, answer) = admin.post(
        "/ldap/users/import",
        &json!({"ldap_uid_list": ["bob", "b".repeat(300)]}),
    );
    assert_eq!(status, 400, "{answer}");
    let (_, _, users) = admin.get("/users/search?username=bob");
    assert_eq!(users, json!([]), "{users}");
    // Not a DN: no group, not a directory failure.
    let (status, _, answer) = admin.get("/ldap/groups/search?groupdn=notadn");
    assert_eq!((status, answer), (200, json!([])));

    // Only administrators; the search for recorded groups is anyone's.
    let bob = Api::as_user(&berth, BOB.uid, BOB.password);
    assert_eq!(bob.get("/ldap/users/search?username=bob").0, 403);
    assert_eq!(bob.post("/ldap/ping", &json!({})).0, 403);
    assert_eq!(bob.get("/usergroups").0, 403);
    assert_eq!(Api::anonymous(&berth).get("/ldap/groups/search").0, 401);

    // A group recorded from the directory, by DN, once.
    let (status, headers, answer) = admin.post(
        "/usergroups",
        &json!({"group_type": 1, "ldap_group_dn": ADMINS_DN}),
    );
    assert_eq!(status, 201, "{answer}");
    let location = headers["location"].to_str().unwrap().to_owned();
    let id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();
    let (_, _, group) = admin.get(&format!("/usergroups/{id}"));
    assert_eq!(group["group_name"], "registry-admins", "{group}");
    assert_eq!(group["ldap_group_dn"], ADMINS_DN, "{group}");
    let (status, _, answer) = admin.post(
        "/usergroups",
        &json!({"group_type": 1, "ldap_group_dn": ADMINS_DN.to_uppercase()}),
    );
    assert_eq!(status, 409, "{answer}");
    // A member named by the DN in another case is the same group.
    let (status, _, answer) = admin.post(
        "/projects/team/members",
        &json!({"role_id": 3, "member_group": {"ldap_group_dn": ADMINS_DN.to_uppercase(), "group_type": 1}}),
    );
    assert_eq!(status, 201, "{answer}");
    let (_, headers, _) = admin.get("/usergroups");
    assert_eq!(headers["x-total-count"], "1");
    for body in [
        json!({"group_type": 1, "ldap_group_dn": "="}),
        json!({"group_type": 1, "ldap_group_dn": "cn=nobody,ou=groups,dc=example,dc=org"}),
        json!({"group_type": 2, "ldap_group_dn": DEVELOPERS_DN}),
        json!({"group_type": 1}),
    ] {
        let (status, _, answer) = admin.post("/usergroups", &body);
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (status, _, answer) = admin.put(
        &format!("/usergroups/{id}"),
        &json!({"group_name": "admins"}),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = bob.get("/usergroups/search?groupname=admin");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!([{"id": id, "group_name": "admins", "group_type": 1}])
    );
    assert_eq!(
        Api::anonymous(&berth)
            .get("/usergroups/search?groupname=a")
            .0,
        401
    );

    // Made a member by id: alice (in it) may then use the private `ops`;
    // deleting the group takes that membership, at once.
    admin.create_project("ops", false);
    let (status, _, answer) = admin.post(
        "/projects/ops/members",
        &json!({"role_id": 2, "member_group": {"id": id}}),
    );
    assert_eq!(status, 201, "{answer}");
    let alice = Api::as_user(&berth, slapd::ALICE.uid, slapd::ALICE.password);
    assert_eq!(alice.get("/projects/ops").0, 200);
    let (status, _, answer) = admin.post(
        "/projects/ops/members",
        &json!({"role_id": 2, "member_group": {"id": 999_999}}),
    );
    assert_eq!(status, 404, "{answer}");
    assert_eq!(admin.delete(&format!("/usergroups/{id}")).0, 200);
    assert_eq!(admin.get(&format!("/usergroups/{id}")).0, 404);
    assert_eq!(alice.get("/projects/ops").0, 404);
    for project in ["ops", "team"] {
        let (status, _, members) = admin.get(&format!("/projects/{project}/members"));
        assert_eq!(status, 200, "{members}");
        assert!(
            members
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["entity_type"] != "g"),
            "{members}"
        );
    }
}

/// harborapi (PyPI) pings, searches, imports and records groups through
/// Harbor's `LdapPingResult`, `LdapUser`, `UserGroup` and
/// `UserGroupSearchItem`.
const HARBORAPI_SCRIPT: &str = r#"
import asyncio, json, os
from harborapi import HarborAsyncClient
from harborapi.models import UserGroup

async def main():
    c = HarborAsyncClient(url=os.environ["BERTH_URL"] + "/api/v2.0",
                          username="admin", secret=os.environ["BERTH_PASSWORD"])
    ping = await c.ping_ldap()
    users = await c.search_ldap_users("alice")
    groups = await c.search_ldap_groups(group_name="developers")
    await c.import_ldap_users(["bob"])
    location = await c.create_usergroup(UserGroup(group_type=1, ldap_group_dn=os.environ["GROUP_DN"]))
    group_id = int(location.rsplit("/", 1)[1])
    await c.update_usergroup(group_id, UserGroup(group_name="devs"))
    recorded = await c.get_usergroups()
    found = await c.search_usergroups("dev")
    await c.delete_usergroup(group_id)
    print(json.dumps({
        "ping": ping.success,
        "users": [[u.username, u.realname, u.email] for u in users],
        "groups": [[g.group_name, g.ldap_group_dn] for g in groups],
        "recorded": [[g.group_name, g.group_type] for g in recorded],
        "found": [[g.id == group_id, g.group_name] for g in found],
        "left": len(await c.get_usergroups()),
    }))

asyncio.run(main())
"#;

#[test]
fn harborapi_drives_the_directory_and_user_groups_through_harbors_models() {
    let slapd = Slapd::start();
    let berth = berth_with_ldap(&slapd);
    let out = std::process::Command::new("python3")
        .args(["-c", HARBORAPI_SCRIPT])
        .env("BERTH_URL", berth.url())
        .env("BERTH_PASSWORD", berth.admin_password())
        .env("GROUP_DN", DEVELOPERS_DN)
        .output()
        .unwrap();
    assert!(out.status.success(), "harborapi: {}", text(&out));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got,
        json!({
            "ping": true,
            "users": [["alice", slapd::ALICE.display_name, slapd::ALICE.mail]],
            "groups": [["developers", DEVELOPERS_DN]],
            "recorded": [["devs", 1]],
            "found": [[true, "devs"]],
            "left": 0,
        })
    );
    let (_, _, users) = Api::admin(&berth).get("/users/search?username=bob");
    assert_eq!(names(&users, "username"), ["bob"], "{users}");
}
