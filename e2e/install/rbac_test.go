package install

import (
	"fmt"
	"slices"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// TestRBACRuleIsNeeded shows that the installed RBAC is needed, not just present: with update on
// scaledjobs/finalizers taken out of ClusterRole kubedispatch-manager, the in-cluster dispatcher cannot create a
// ScaledJob's Jobs (OwnerReferencesPermissionEnforcement refuses their blockOwnerDeletion owner reference) and says
// so in the ScaledJob's status (Ready=False, JobCreateFailed, the API server's refusal); with the rule back, the
// same ScaledJob dispatches.
func TestRBACRuleIsNeeded(t *testing.T) {
	f := framework.New(t)
	in := installKustomize(t, f)
	roles := f.Clientset.RbacV1().ClusterRoles()
	cr, err := roles.Get(f.Ctx, "kubedispatch-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	full := cr.DeepCopy().Rules
	attrs := authorizationv1.ResourceAttributes{
		Namespace: f.Namespace, Verb: "update", Group: "kubedispatch.io", Resource: "scaledjobs", Subresource: "finalizers",
	}
	reduced, removed := without(full, attrs.Group, attrs.Resource+"/"+attrs.Subresource)
	if !removed {
		t.Fatalf("ClusterRole kubedispatch-manager grants no %s %s/%s: %+v", attrs.Group, attrs.Resource, attrs.Subresource, full)
	}
	setRules(t, f, reduced)
	waitAllowed(t, f, in, attrs, false)

	const name = "rbac"
	queue := f.CreateQueue(name, nil)
	sj := framework.NewScaledJob(f, name).SQS(queue, 1).Max(5).RunFor("10m")
	sj.ScaledJob.Spec.Triggers[0].AuthenticationRef = f.AWSKeysAuth()
	sj.Create()
	f.SendMessages(queue, 2, name)
	got := f.WaitReady(name, metav1.ConditionFalse, "forbidden", "blockOwnerDeletion")
	if c := framework.Condition(got, v1alpha1.ConditionReady); c.Reason != dispatch.ReasonJobCreateFailed {
		t.Errorf("Ready condition reason %q, want %s (message %q)", c.Reason, dispatch.ReasonJobCreateFailed, c.Message)
	}
	if jobs := f.JobsOf(name); len(jobs) != 0 {
		t.Errorf("%d Jobs created without the rule, want none", len(jobs))
	}

	setRules(t, f, full)
	waitAllowed(t, f, in, attrs, true)
	f.Eventually("2 Jobs with the rule back", 2*time.Minute, func() (bool, error) {
		n := len(f.JobsOf(name))
		return n == 2, fmt.Errorf("%d Jobs", n)
	})
	f.WaitReady(name, metav1.ConditionTrue)
}

// without returns rules without the resource res of API group group (a rule left with no resource is dropped), and
// whether it was there.
func without(rules []rbacv1.PolicyRule, group, res string) ([]rbacv1.PolicyRule, bool) {
	var out []rbacv1.PolicyRule
	removed := false
	for _, r := range rules {
		r = *r.DeepCopy()
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, res) {
			r.Resources = slices.DeleteFunc(r.Resources, func(s string) bool { return s == res })
			removed = true
			if len(r.Resources) == 0 {
				continue
			}
		}
		out = append(out, r)
	}
	return out, removed
}

// setRules replaces the rules of ClusterRole kubedispatch-manager, retrying on conflicts.
func setRules(t *testing.T, f *framework.F, rules []rbacv1.PolicyRule) {
	t.Helper()
	f.Eventually("updating ClusterRole kubedispatch-manager", time.Minute, func() (bool, error) {
		cr, err := f.Clientset.RbacV1().ClusterRoles().Get(f.Ctx, "kubedispatch-manager", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cr.Rules = rules
		_, err = f.Clientset.RbacV1().ClusterRoles().Update(f.Ctx, cr, metav1.UpdateOptions{})
		return err == nil, err
	})
}

// waitAllowed waits until the API server's authorizer allows (or denies) attrs to the dispatcher's ServiceAccount:
// RBAC changes reach it through informers.
func waitAllowed(t *testing.T, f *framework.F, in install, attrs authorizationv1.ResourceAttributes, allowed bool) {
	t.Helper()
	user := "system:serviceaccount:" + in.namespace + ":" + in.serviceAccount
	f.Eventually(fmt.Sprintf("%s allowed=%v to %s %s/%s", user, allowed, attrs.Verb, attrs.Resource, attrs.Subresource), time.Minute, func() (bool, error) {
		review, err := f.Clientset.AuthorizationV1().SubjectAccessReviews().Create(f.Ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               user,
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + in.namespace, "system:authenticated"},
				ResourceAttributes: &attrs,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return review.Status.Allowed == allowed, fmt.Errorf("allowed=%v (%s)", review.Status.Allowed, review.Status.Reason)
	})
}
